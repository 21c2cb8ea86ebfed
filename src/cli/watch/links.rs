//! The symlinks among the files `planexe watch` watches, and the files
//! they lead through. A build stamps an input or an output through its
//! symlink, from the file it leads to: editing that file (which may be in
//! another folder) is a change to the input or output, and its event names
//! that file, not the link. So the watch looks at each file on the way,
//! and knows which watched paths lead through it.
//!
//! A link re-pointed is an event for the link (or for a link on the way):
//! [`Links::relink`] follows it again then, so what it leads to now is
//! watched, even when the change itself starts no build (an output
//! re-pointed at a file of the size and mtime its record holds is as the
//! build left it, as a `planexe build` would find it too).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::store::stamp::lexical;

/// How many links a chain follows at most: as many as Linux does (40),
/// so a loop of links ends.
const MAX_HOPS: usize = 40;

/// The watched paths that are symlinks, and the files they lead through.
#[derive(Debug, Clone, Default)]
pub struct Links {
    /// Each watched path that is a symlink, and the files it leads
    /// through, absolute, in order from the link.
    chains: BTreeMap<PathBuf, Vec<PathBuf>>,
    /// Each file a chain leads through, and the watched paths whose
    /// chains do.
    through: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
}

impl Links {
    /// The chains of `paths` (absolute, lexical) that are symlinks now.
    pub fn of<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Links {
        let mut links = Links::default();
        for path in paths {
            let hops = link_targets(path);
            if !hops.is_empty() {
                links.chains.insert(path.clone(), hops);
            }
        }
        links.index();
        links
    }

    /// Follows again the chains an event for `path` may have changed: its
    /// own, when it is a watched path (`watched`), and those that lead
    /// through it (a link on the way re-pointed, or replaced by a file).
    /// Whether any changed.
    pub fn relink(&mut self, path: &Path, watched: bool) -> bool {
        let mut roots: Vec<PathBuf> = self.led_from(path).cloned().collect();
        if watched {
            roots.push(path.to_path_buf());
        }
        let mut changed = false;
        for root in roots {
            let now = link_targets(&root);
            let before = self.chains.get(&root).map_or(&[][..], Vec::as_slice);
            if before == now.as_slice() {
                continue;
            }
            changed = true;
            if now.is_empty() {
                self.chains.remove(&root);
            } else {
                self.chains.insert(root, now);
            }
        }
        if changed {
            self.index();
        }
        changed
    }

    /// Every file a chain leads through.
    pub fn hops(&self) -> impl Iterator<Item = &PathBuf> {
        self.through.keys()
    }

    /// The watched paths whose chains lead through `path`.
    pub fn led_from(&self, path: &Path) -> impl Iterator<Item = &PathBuf> {
        self.through.get(path).into_iter().flatten()
    }

    fn index(&mut self) {
        self.through.clear();
        for (root, hops) in &self.chains {
            for hop in hops {
                let roots = self.through.entry(hop.clone()).or_default();
                roots.insert(root.clone());
            }
        }
    }
}

/// The files a symlink at `path` leads through, absolute, in order from
/// the link; empty when `path` is no symlink. At most [`MAX_HOPS`], so a
/// loop of links ends.
fn link_targets(path: &Path) -> Vec<PathBuf> {
    let mut hops = Vec::new();
    let mut at = path.to_path_buf();
    while hops.len() < MAX_HOPS {
        let Ok(target) = std::fs::read_link(&at) else {
            break;
        };
        let next = lexical(&at.parent().unwrap_or(Path::new("/")).join(target));
        hops.push(next.clone());
        at = next;
    }
    hops
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_chain_is_followed_again_when_a_link_on_it_is_re_pointed() {
        let dir = tempfile::tempdir().unwrap();
        let at = |rel: &str| dir.path().join(rel);
        std::fs::create_dir(at("store")).unwrap();
        symlink("store/mid.txt", at("out.txt")).unwrap();
        symlink("real.txt", at("store/mid.txt")).unwrap();
        let (out, plain) = (at("out.txt"), at("plain.txt"));
        std::fs::write(&plain, "x").unwrap();
        let mut links = Links::of([&out, &plain]);
        let hops: Vec<&PathBuf> = links.hops().collect();
        assert_eq!(hops, [&at("store/mid.txt"), &at("store/real.txt")]);
        assert_eq!(links.led_from(&at("store/real.txt")).count(), 1);
        assert_eq!(links.led_from(&plain).count(), 0);

        // Nothing changed: nothing to do.
        assert!(!links.relink(&out, true));
        // A link on the way re-pointed: its event names it.
        std::fs::remove_file(at("store/mid.txt")).unwrap();
        symlink("../other.txt", at("store/mid.txt")).unwrap();
        assert!(links.relink(&at("store/mid.txt"), false));
        assert_eq!(links.led_from(&at("other.txt")).next(), Some(&out));
        assert_eq!(links.led_from(&at("store/real.txt")).count(), 0);
        // The link replaced by a file: no chain.
        std::fs::remove_file(&out).unwrap();
        std::fs::write(&out, "x").unwrap();
        assert!(links.relink(&out, true));
        assert_eq!(links.hops().count(), 0);
        // A file made a link.
        std::fs::remove_file(&plain).unwrap();
        symlink("out.txt", &plain).unwrap();
        assert!(links.relink(&plain, true));
        assert_eq!(links.led_from(&out).next(), Some(&plain));
    }

    #[test]
    fn a_loop_of_links_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        symlink(&b, &a).unwrap();
        symlink(&a, &b).unwrap();
        assert_eq!(link_targets(&a).len(), MAX_HOPS);
    }
}
