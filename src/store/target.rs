//! A target named on the command line by its absolute path (`$(abspath
//! $@)` in a Makefile recipe, `$PWD/out/a.md`), as the path relative to
//! the run directory that the pipeline's outputs are named by.

use std::path::{Component, Path, PathBuf};

use super::rundir::RunDir;

impl RunDir {
    /// A target named on the command line as a path planexe can look up:
    /// an absolute path that lies inside the run directory (`$(abspath
    /// $@)` in a Makefile, `$PWD/out/a.md`) as a path relative to it; any
    /// other name as it is. The path need not exist: its longest existing
    /// ancestor is resolved (symlinks, `..`) as the run directory was.
    pub fn target(&self, raw: &str) -> String {
        let path = Path::new(raw);
        if !path.is_absolute() {
            return raw.to_string();
        }
        // Inside only by plain names: `ROOT/../x` is not.
        let inside = |p: &Path| {
            p.strip_prefix(self.root()).ok().and_then(|rel| {
                let parts: Option<Vec<&str>> = (rel.components())
                    .map(|c| match c {
                        Component::Normal(name) => name.to_str(),
                        _ => None,
                    })
                    .collect();
                parts.filter(|p| !p.is_empty()).map(|p| p.join("/"))
            })
        };
        if let Some(rel) = inside(path) {
            return rel;
        }
        let mut existing = path;
        let mut rest = Vec::new();
        while let Some(parent) = existing.parent() {
            if let Ok(real) = std::fs::canonicalize(existing) {
                let full = rest.iter().rev().fold(real, |p: PathBuf, c| p.join(c));
                return inside(&full).unwrap_or_else(|| raw.to_string());
            }
            // A `..` past a folder that is not there leads nowhere.
            let Some(name) = existing.file_name() else {
                break;
            };
            rest.push(name);
            existing = parent;
        }
        raw.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_targets_inside_the_run_directory_are_relative_to_it() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("run")).unwrap();
        let run = RunDir::open(&tmp.path().join("run")).unwrap();
        let root = run.root().display().to_string();
        assert_eq!(run.target(&format!("{root}/out/a.md")), "out/a.md");
        assert_eq!(run.target("out/a.md"), "out/a.md");
        assert_eq!(run.target("draft"), "draft");
        // Through `..` and a symlink to the run directory, not yet made.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(run.root(), &link).unwrap();
        let via = format!("{}/../link/out/b.md", run.root().display());
        assert_eq!(run.target(&via), "out/b.md");
        // Outside it, or the run directory itself: as given.
        let outside = format!("{}/other/a.md", tmp.path().display());
        assert_eq!(run.target(&outside), outside);
        assert_eq!(run.target(&root), root);
    }
}
