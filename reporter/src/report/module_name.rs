//! Readable dotted names of Python source files: `/usr/lib/python3.11/json/decoder.py` is
//! `json.decoder`.
//!
//! - Below a library directory (`site-packages`, `dist-packages`, `lib/pythonX.Y`,
//!   `lib64/pythonX.Y`, `pythonXY.zip`; the last one in the path wins): the path below it.
//! - Anywhere else (a program's own files): the file name.
//! - Then `/__init__.py` (a package) or `.py` is dropped and `/` becomes `.`.
//! - Pseudo-files such as `<string>` or `<frozen importlib._bootstrap>` keep their name; an empty
//!   path is `<unknown>`.

use super::locations::UNKNOWN;

/// The dotted module name of a Python source file path.
pub fn module_name(path: &str) -> String {
    if path.is_empty() {
        return UNKNOWN.to_string();
    }
    if path.starts_with('<') {
        return path.to_string();
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let parts = match library_root(&parts) {
        Some(root) if root + 1 < parts.len() => &parts[root + 1..],
        // A program's own file: its name (a package: the directory's name).
        _ => match parts.split_last() {
            Some((&"__init__.py", dirs)) if !dirs.is_empty() => &parts[dirs.len() - 1..],
            Some(_) => &parts[parts.len() - 1..],
            None => return path.to_string(),
        },
    };
    let mut name = parts.join(".");
    if let Some(package) = name.strip_suffix(".__init__.py") {
        name.truncate(package.len());
    } else if let Some(module) = name.strip_suffix(".py") {
        if !module.is_empty() {
            name.truncate(module.len());
        }
    }
    name
}

/// The index of the last library directory among the path's components.
fn library_root(parts: &[&str]) -> Option<usize> {
    (0..parts.len()).rev().find(|&i| {
        let p = parts[i];
        p == "site-packages"
            || p == "dist-packages"
            || (i > 0 && matches!(parts[i - 1], "lib" | "lib64") && is_versioned_python(p))
            || p.strip_suffix(".zip").is_some_and(is_zipped_python)
    })
}

/// `python3.11`, `python3.13t`, `python3`.
fn is_versioned_python(dir: &str) -> bool {
    let Some(version) = dir.strip_prefix("python") else {
        return false;
    };
    let version = version.trim_end_matches(|c: char| c.is_ascii_lowercase());
    !version.is_empty()
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// `python311` (of `python311.zip`, the standard library zipped).
fn is_zipped_python(stem: &str) -> bool {
    stem.strip_prefix("python")
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::module_name;

    #[test]
    fn standard_library_and_packages() {
        assert_eq!(
            module_name("/usr/lib/python3.11/json/decoder.py"),
            "json.decoder"
        );
        assert_eq!(module_name("/usr/lib/python3.11/json/__init__.py"), "json");
        assert_eq!(
            module_name("/root/.pyenv/versions/3.12.1/lib/python3.12/asyncio/base_events.py"),
            "asyncio.base_events"
        );
        assert_eq!(
            module_name("/usr/lib64/python3.13t/threading.py"),
            "threading"
        );
        assert_eq!(
            module_name("/home/u/.venv/lib/python3.11/site-packages/requests/api.py"),
            "requests.api"
        );
        assert_eq!(
            module_name("/usr/lib/python3/dist-packages/numpy/core/__init__.py"),
            "numpy.core"
        );
        assert_eq!(
            module_name("/usr/lib/python311.zip/encodings/utf_8.py"),
            "encodings.utf_8"
        );
        assert_eq!(module_name("site-packages/six.py"), "six");
    }

    #[test]
    fn program_files_are_named_by_their_file() {
        assert_eq!(module_name("/home/u/proj/app.py"), "app");
        assert_eq!(module_name("app.py"), "app");
        assert_eq!(module_name("./tools/gen.py"), "gen");
        assert_eq!(module_name("/home/u/proj/pkg/__init__.py"), "pkg");
        assert_eq!(module_name("/home/u/proj/script"), "script");
        // A directory named like a Python version outside lib/ is no library.
        assert_eq!(module_name("/srv/python3.11/app.py"), "app");
    }

    #[test]
    fn pseudo_files_and_odd_paths() {
        assert_eq!(module_name("<string>"), "<string>");
        assert_eq!(
            module_name("<frozen importlib._bootstrap>"),
            "<frozen importlib._bootstrap>"
        );
        assert_eq!(module_name(""), "<unknown>");
        assert_eq!(module_name("/"), "/");
        assert_eq!(module_name("__init__.py"), "__init__");
        assert_eq!(module_name(".py"), ".py");
        // The library directory itself: its name.
        assert_eq!(
            module_name("/usr/lib/python3.11/site-packages"),
            "site-packages"
        );
        assert_eq!(
            module_name("/usr/lib/python3.11/site-packages/pkg/__init__.py"),
            "pkg"
        );
    }
}
