//! What resolution read beyond the pipeline file, as it read it: each
//! `prompt_file`, `schema` and `foreach` list file, and each folder a glob
//! walked, by the path [`super::Graph::source_paths`] names it with, with
//! a hash of the content read (a file's bytes, a folder's names: the
//! hashes `store::stamp` gives them). A file changed around its read
//! (its stat, taken once resolution ends, is too recent to say whether it
//! came before the read) is vouched for by the certificate only if it
//! still holds this.
//!
//! A folder's hash leaves out what resolution never takes from it: the
//! names of the files tasks produce and of the folders on the way to them
//! (a glob does not match them), and planexe's own folder. A build whose
//! tasks write into a folder a glob walks changes its stat, never this.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::store::rundir::STATE_DIR;
use crate::store::stamp;

/// The folders on the way to the paths tasks produce: with those paths,
/// what a folder's hash as read leaves out.
#[derive(Debug, Default)]
pub struct Produced {
    folders: HashSet<String>,
}

impl Produced {
    /// Of every path tasks produce.
    pub fn of<'a>(outputs: impl Iterator<Item = &'a str>) -> Produced {
        let mut folders = HashSet::new();
        for path in outputs {
            let mut folder = path;
            while let Some((parent, _)) = folder.rsplit_once('/') {
                if folders.contains(parent) {
                    break;
                }
                folders.insert(parent.to_string());
                folder = parent;
            }
        }
        Produced { folders }
    }

    /// The hash of the folder `dir` (run-directory relative, `.` for the
    /// run directory) holding `names`, as resolution depends on it;
    /// `is_output` says whether a path is one tasks produce.
    pub fn listing_hash(
        &self,
        dir: &str,
        names: Vec<Vec<u8>>,
        is_output: impl Fn(&str) -> bool,
    ) -> String {
        let left_out = |rel: &str| is_output(rel) || self.folders.contains(rel);
        let kept = names
            .into_iter()
            .filter(|name| {
                let Ok(name) = std::str::from_utf8(name) else {
                    return true;
                };
                if dir == "." {
                    name != STATE_DIR && !left_out(name)
                } else {
                    !left_out(&format!("{dir}/{name}"))
                }
            })
            .collect();
        stamp::names_hash(kept)
    }
}

/// Filled by resolution's passes, on many threads at once.
#[derive(Debug, Default)]
pub struct Reads(Mutex<HashMap<String, String>>);

impl Reads {
    /// `path` (a file) was read holding `bytes`.
    pub fn file(&self, path: String, bytes: &[u8]) {
        self.put_hash(path, stamp::bytes_hash(bytes));
    }

    /// `path` was read holding what `hash` (one of `store::stamp`'s) says.
    /// A path read twice holding different content (changed between two
    /// tasks' reads of it) has no hash content can match.
    pub fn put_hash(&self, path: String, hash: String) {
        let mut read = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match read.get_mut(&path) {
            Some(was) if *was != hash => was.clear(),
            Some(_) => {}
            None => {
                read.insert(path, hash);
            }
        }
    }

    /// Every path read, with the hash of what was read.
    pub fn into_map(self) -> HashMap<String, String> {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}
