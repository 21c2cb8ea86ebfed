//! What resolution read beyond the pipeline file, as it read it: each
//! `prompt_file`, `schema` and `foreach` list file, and each folder a glob
//! walked, by the path [`super::Graph::source_paths`] names it with, with
//! a hash of the content read (a file's bytes, a folder's names: the
//! hashes `store::stamp` gives them). A file changed around its read
//! (its stat, taken once resolution ends, is too recent to say whether it
//! came before the read) is vouched for by the certificate only if it
//! still holds this.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::stamp;

/// Filled by resolution's passes, on many threads at once.
#[derive(Debug, Default)]
pub struct Reads(Mutex<HashMap<String, String>>);

impl Reads {
    /// `path` (a file) was read holding `bytes`.
    pub fn file(&self, path: String, bytes: &[u8]) {
        self.put_hash(path, stamp::bytes_hash(bytes));
    }

    /// `path` (a folder) was listed holding `names`.
    pub fn folder(&self, path: String, names: Vec<Vec<u8>>) {
        self.put_hash(path, stamp::names_hash(names));
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
