//! Driving Debian's headless chromium over an HTML report with tests/browser/flamegraph.mjs
//! (playwright-core, installed by `npm ci` once into target/browser/node). Chromium, node and
//! npm are required: CI installs them (`.ci/run`), and a test that needs them fails, with how
//! to install them, when they are missing.

use crate::{target_dir, workspace};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Where the screenshots go: target/browser/.
pub fn artefacts() -> PathBuf {
    let dir = target_dir().join("browser");
    std::fs::create_dir_all(&dir).expect("create target/browser");
    dir
}

/// The chromium to drive: $MEMTRACE_CHROMIUM, else Debian's /usr/bin/chromium.
fn chromium() -> PathBuf {
    let path = std::env::var_os("MEMTRACE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.is_file(),
        "the browser test needs Debian's chromium at {} (`apt-get install -y \
         --no-install-recommends chromium`, as .ci/run does; or set MEMTRACE_CHROMIUM)",
        path.display()
    );
    path
}

/// Runs `program --version`, failing the test with how to install it when it is absent.
fn require(program: &str) {
    let ok = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the browser test needs `{program}` on PATH (Debian: `apt-get install -y nodejs npm`)"
    );
}

/// target/browser/node/node_modules with the locked playwright-core: `npm ci` runs when the
/// lock file changed since the last install, else the install is reused.
fn node_modules() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require("node");
        require("npm");
        let src = workspace().join("tests/browser");
        let dir = artefacts().join("node");
        std::fs::create_dir_all(&dir).expect("create target/browser/node");
        let lock = std::fs::read(src.join("package-lock.json")).expect("the lock file");
        let stamp = dir.join("installed.lock");
        let modules = dir.join("node_modules");
        let fresh = std::fs::read(&stamp).is_ok_and(|s| s == lock)
            && modules.join("playwright-core/package.json").is_file();
        if !fresh {
            for f in ["package.json", "package-lock.json"] {
                std::fs::copy(src.join(f), dir.join(f)).expect("copy the package files");
            }
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
                .current_dir(&dir)
                .stdin(Stdio::null())
                .output()
                .expect("npm runs");
            assert!(
                out.status.success(),
                "npm ci in {} failed: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&stamp, &lock).expect("write the stamp");
        }
        modules
    })
}

/// What to check on a page (see tests/browser/flamegraph.mjs).
pub struct Check<'a> {
    pub report: &'a Path,
    /// The screenshots' name in target/browser/: NAME.png and NAME-zoomed.png.
    pub name: &'a str,
    /// Frames that must be drawn, by name.
    pub names: &'a [String],
    /// The frame to hover and click.
    pub zoom: &'a str,
    /// A frame the zoom hides.
    pub beside: &'a str,
    /// Text the details line shows while hovering `zoom`.
    pub hover: &'a str,
}

/// Loads the page in headless chromium and checks it; returns the screenshots' paths.
pub fn check(c: &Check) -> (PathBuf, PathBuf) {
    let chromium = chromium();
    let modules = node_modules();
    let dir = artefacts();
    let shot = dir.join(format!("{}.png", c.name));
    let zoomed = dir.join(format!("{}-zoomed.png", c.name));
    for f in [&shot, &zoomed] {
        let _ = std::fs::remove_file(f);
    }
    let spec: Value = json!({
        "report": c.report,
        "screenshot": shot,
        "zoomed_screenshot": zoomed,
        "names": c.names,
        "zoom": c.zoom,
        "beside": c.beside,
        "hover": c.hover,
        "node_modules": modules,
        "chromium": chromium,
    });
    let spec_path = dir.join(format!("{}.json", c.name));
    std::fs::write(&spec_path, spec.to_string()).expect("write the spec");
    let out = Command::new("node")
        .arg(workspace().join("tests/browser/flamegraph.mjs"))
        .arg(&spec_path)
        .stdin(Stdio::null())
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "the page failed in chromium:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [&shot, &zoomed] {
        let png = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{}",
            f.display()
        );
    }
    (shot, zoomed)
}

/// What to check on the interactive page (see tests/browser/interactive.mjs).
pub struct Explore<'a> {
    pub report: &'a Path,
    /// The screenshots' prefix in target/browser/: NAME-STEP.png.
    pub name: &'a str,
    /// Frames that must be drawn, by name.
    pub names: &'a [String],
    /// The frame to hover and click.
    pub zoom: &'a str,
    /// A frame the zoom hides.
    pub beside: &'a str,
    /// Text the details line shows while hovering `zoom`.
    pub hover: &'a str,
    /// For a two-phase script: the frames of each phase and the rest (see the script).
    pub phases: Option<Value>,
    /// For a --native capture: `{outer, inner}`: two Python frames, caller and callee, with the
    /// interpreter's frames between them (`between`, a function name) and before them, hidden by
    /// default; `below`: a native function under the Python frames, always shown.
    pub native: Option<Value>,
    /// For a Python run with object types: `{type, line, objects}`, a type live at the peak and
    /// at exit, the location of its first line and its object count as the page writes it.
    pub types: Option<Value>,
}

/// Loads the interactive page in headless chromium, uses it and checks it; returns the
/// screenshots' paths (one per step).
pub fn explore(c: &Explore) -> Vec<PathBuf> {
    let chromium = chromium();
    let modules = node_modules();
    let dir = artefacts();
    let spec: Value = json!({
        "report": c.report,
        "shots": dir,
        "name": c.name,
        "names": c.names,
        "zoom": c.zoom,
        "beside": c.beside,
        "hover": c.hover,
        "phases": c.phases,
        "native": c.native,
        "types": c.types,
        "node_modules": modules,
        "chromium": chromium,
    });
    run_page_script("interactive.mjs", "page", c.name, &dir, &spec)
}

/// The pages of two captures made under a cgroup memory limit (see tests/browser/limit.mjs):
/// `on_scale` with the limit within 4 times its highest value, `above` with one far above;
/// each with the limit in bytes and the label the chart must show.
pub struct Limit<'a> {
    pub on_scale: (&'a Path, u64, &'a str),
    pub above: (&'a Path, u64, &'a str),
}

/// Loads the two pages in headless chromium and checks the limit on their charts; returns the
/// screenshots' paths.
pub fn limit(c: &Limit) -> Vec<PathBuf> {
    let chromium = chromium();
    let modules = node_modules();
    let dir = artefacts();
    let spec: Value = json!({
        "on_scale": c.on_scale.0,
        "limit_on_scale": c.on_scale.1,
        "label_on_scale": c.on_scale.2,
        "above": c.above.0,
        "limit_above": c.above.1,
        "label_above": c.above.2,
        "shots": dir,
        "name": "limit",
        "node_modules": modules,
        "chromium": chromium,
    });
    run_page_script("limit.mjs", "limit page", "limit", &dir, &spec)
}

/// What to check on a family's interactive page (see tests/browser/family.mjs).
pub struct Family<'a> {
    pub report: &'a Path,
    /// The screenshots' prefix in target/browser/: NAME-STEP.png.
    pub name: &'a str,
    /// `stats`' combined_peak_bytes.
    pub combined_peak: u64,
    /// The labels (`pid 123: ...`) of processes holding memory at the combined peak.
    pub processes: &'a [String],
    /// The process to choose in the filter, and a frame of its work.
    pub pick: &'a str,
    pub pick_frame: &'a str,
}

/// Loads a family's page in headless chromium, uses it and checks it; returns the
/// screenshots' paths.
pub fn family(c: &Family) -> Vec<PathBuf> {
    let chromium = chromium();
    let modules = node_modules();
    let dir = artefacts();
    let spec: Value = json!({
        "report": c.report,
        "shots": dir,
        "name": c.name,
        "combined_peak": c.combined_peak,
        "processes": c.processes,
        "pick": c.pick,
        "pick_frame": c.pick_frame,
        "node_modules": modules,
        "chromium": chromium,
    });
    run_page_script("family.mjs", "family page", c.name, &dir, &spec)
}

/// Runs tests/browser/`script` on `spec` (written as `dir/name.json`), fails with `what` when
/// it fails, and returns the screenshots it took (each checked to be a real PNG).
fn run_page_script(script: &str, what: &str, name: &str, dir: &Path, spec: &Value) -> Vec<PathBuf> {
    let spec_path = dir.join(format!("{name}.json"));
    std::fs::write(&spec_path, spec.to_string()).expect("write the spec");
    let out = Command::new("node")
        .arg(workspace().join("tests/browser").join(script))
        .arg(&spec_path)
        .stdin(Stdio::null())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the {what} failed in chromium:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shots: Vec<PathBuf> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ok: "))
        .flat_map(|l| l.split_once(": ").map(|x| x.1).unwrap_or("").split(' '))
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    for f in &shots {
        let png = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{}",
            f.display()
        );
    }
    shots
}
