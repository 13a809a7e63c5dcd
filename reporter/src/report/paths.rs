//! Shorter file paths for text reports: a file under the script's directory or the current
//! directory prints relative to whichever gives the shorter path (`app/models.py` rather than
//! `/home/u/proj/app/models.py`), so that report lines do not wrap. JSON keeps full paths, and
//! so does text with `--full-paths`.

use std::path::{Component, Path, PathBuf};

/// How a report shows file paths.
#[derive(Clone, Debug, Default)]
pub struct Paths {
    /// Directories a path may be shown relative to (the script's, the current one).
    bases: Vec<PathBuf>,
}

impl Paths {
    /// Full paths, as recorded.
    pub fn full() -> Paths {
        Paths::default()
    }

    /// Paths relative to the directory of the run's script (found from the command line and
    /// the files of the report's frames) or to `cwd`, whichever is shorter.
    pub fn relative<'a>(
        argv: &[String],
        files: impl IntoIterator<Item = &'a str>,
        cwd: Option<PathBuf>,
    ) -> Paths {
        let mut bases: Vec<PathBuf> = script_dir(argv, files).into_iter().collect();
        bases.extend(cwd.filter(|c| c.is_absolute() && c.parent().is_some()));
        Paths { bases }
    }

    /// `file` as the report shows it.
    pub fn file<'a>(&self, file: &'a str) -> std::borrow::Cow<'a, str> {
        let path = Path::new(file);
        if !path.is_absolute() {
            return file.into();
        }
        let shortest = self
            .bases
            .iter()
            .filter_map(|b| path.strip_prefix(b).ok())
            .filter(|rel| !rel.as_os_str().is_empty())
            .filter_map(|rel| rel.to_str())
            .min_by_key(|rel| rel.len());
        match shortest {
            Some(rel) if rel.len() < file.len() => rel.to_string().into(),
            _ => file.into(),
        }
    }

    /// A location's label (`f at /a/b.py:3`) with its file shown as [`Paths::file`] shows it.
    pub fn label(&self, label: &str, file: Option<&str>) -> String {
        let Some(file) = file else {
            return label.to_string();
        };
        let short = self.file(file);
        if short == file {
            return label.to_string();
        }
        match label.rfind(file) {
            Some(at) => format!("{}{short}{}", &label[..at], &label[at + file.len()..]),
            None => label.to_string(),
        }
    }
}

/// The files of a call tree's locations (to find the script's directory among them).
pub fn tree_files(tree: &super::calltree::CallTree) -> impl Iterator<Item = &str> {
    tree.nodes
        .iter()
        .filter_map(|n| n.location.as_ref()?.file.as_deref())
}

/// The directory of the Python script the run's command line names (its first word ending in
/// `.py`): the word's own directory when it is absolute, else that of a frame's file that ends
/// with it (the interpreter records the script's absolute path).
fn script_dir<'a>(argv: &[String], files: impl IntoIterator<Item = &'a str>) -> Option<PathBuf> {
    let word = argv.iter().skip(1).find(|w| w.ends_with(".py"))?;
    let script = Path::new(word);
    if script.is_absolute() {
        return script.parent().map(Path::to_path_buf);
    }
    // A relative word: its plain components (`./` left out; a `..` cannot be matched).
    let mut parts = Vec::new();
    for c in script.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let tail: PathBuf = parts.iter().collect();
    files.into_iter().find_map(|f| {
        let f = Path::new(f);
        if !f.is_absolute() || !f.ends_with(&tail) {
            return None;
        }
        f.parent().map(Path::to_path_buf)
    })
}

#[cfg(test)]
mod tests {
    use super::Paths;
    use std::path::PathBuf;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn relative_to_the_script_or_the_current_directory() {
        let files = [
            "/home/u/proj/app/main.py",
            "/usr/lib/python3.11/json/decoder.py",
        ];
        let p = Paths::relative(
            &argv(&["/usr/bin/python3", "app/main.py"]),
            files,
            Some(PathBuf::from("/home/u")),
        );
        // The script's directory is /home/u/proj/app: shorter than from /home/u.
        assert_eq!(p.file("/home/u/proj/app/main.py"), "main.py");
        assert_eq!(p.file("/home/u/proj/app/lib/x.py"), "lib/x.py");
        // Outside the script's directory, the current directory gives the shorter path.
        assert_eq!(p.file("/home/u/proj/tools/t.py"), "proj/tools/t.py");
        // Elsewhere, and names that are not paths, stay as they are.
        assert_eq!(
            p.file("/usr/lib/python3.11/json/decoder.py"),
            "/usr/lib/python3.11/json/decoder.py"
        );
        assert_eq!(
            p.file("<frozen importlib._bootstrap>"),
            "<frozen importlib._bootstrap>"
        );
        assert_eq!(
            p.label(
                "f at /home/u/proj/app/main.py:7",
                Some("/home/u/proj/app/main.py")
            ),
            "f at main.py:7"
        );
    }

    #[test]
    fn full_paths_and_unmatched_scripts() {
        let p = Paths::full();
        assert_eq!(p.file("/a/b/c.py"), "/a/b/c.py");
        // A script word with `..` is not matched; the current directory still applies.
        let p = Paths::relative(
            &argv(&["python3", "../x.py"]),
            ["/a/x.py"],
            Some(PathBuf::from("/a")),
        );
        assert_eq!(p.file("/a/x.py"), "x.py");
        // No `/` alone as a base: the current directory `/` shortens nothing.
        let p = Paths::relative(&argv(&["python3", "-c", "x"]), [], Some(PathBuf::from("/")));
        assert_eq!(p.file("/a/x.py"), "/a/x.py");
    }
}
