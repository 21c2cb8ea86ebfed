//! [`Stamps`]: the files a task's record says it read, or wrote, each
//! with its [`Stamp`], by path.
//!
//! A task has a few files, and a build holds the record of every task: a
//! tree map gives each such map a node of eleven slots (some 700 bytes),
//! where a sorted list holds what it has. The list is what `litemap` is
//! made for: lookups by binary search, entries in path order, and, read
//! from JSON that lists them in order (as planexe writes them), each
//! entry appended. It reads and writes as a JSON object of path to stamp,
//! `{}` when empty, as the tree map did.

use std::ops::{Deref, DerefMut};

use litemap::LiteMap;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::stamp::Stamp;

/// Stamps by path, in path order (a later entry for the same path, read
/// from JSON, replaces the earlier one). Many stamps go in with
/// `extend`, sorted once: `insert` out of order moves every entry after
/// the new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stamps(LiteMap<String, Stamp>);

impl Stamps {
    pub fn new() -> Stamps {
        Stamps(LiteMap::new_vec())
    }
}

impl Deref for Stamps {
    type Target = LiteMap<String, Stamp>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Stamps {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl FromIterator<(String, Stamp)> for Stamps {
    fn from_iter<I: IntoIterator<Item = (String, Stamp)>>(iter: I) -> Stamps {
        Stamps(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Stamps {
    type Item = (&'a String, &'a Stamp);
    type IntoIter = <&'a LiteMap<String, Stamp> as IntoIterator>::IntoIter;

    fn into_iter(self) -> Self::IntoIter {
        (&self.0).into_iter()
    }
}

/// Always an object: `litemap` writes an empty map to a human-readable
/// format as an empty list.
impl Serialize for Stamps {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (path, stamp) in self.0.iter() {
            map.serialize_entry(path, stamp)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Stamps {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Stamps, D::Error> {
        LiteMap::deserialize(deserializer).map(Stamps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(size: u64) -> Stamp {
        Stamp {
            size,
            mtime_ns: 7,
            blake3: format!("{size:064x}"),
        }
    }

    #[test]
    fn stamps_read_and_write_as_an_object_in_path_order() {
        let empty = Stamps::new();
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
        let back: Stamps = serde_json::from_str("{}").unwrap();
        assert!(back.is_empty());

        // Out of order and with a path twice: sorted, the later one kept,
        // as a tree map reads them.
        let text = format!(
            r#"{{"b":{},"a":{},"c":{},"b":{}}}"#,
            serde_json::to_string(&stamp(1)).unwrap(),
            serde_json::to_string(&stamp(2)).unwrap(),
            serde_json::to_string(&stamp(3)).unwrap(),
            serde_json::to_string(&stamp(4)).unwrap(),
        );
        let read: Stamps = serde_json::from_str(&text).unwrap();
        let tree: std::collections::BTreeMap<String, Stamp> = serde_json::from_str(&text).unwrap();
        assert_eq!(
            read.iter().collect::<Vec<_>>(),
            tree.iter().collect::<Vec<_>>()
        );
        assert_eq!(read.get("b"), Some(&stamp(4)));
        assert_eq!(
            serde_json::to_string(&read).unwrap(),
            serde_json::to_string(&tree).unwrap()
        );
        // Pretty, as in a sidecar.
        assert_eq!(
            serde_json::to_string_pretty(&read).unwrap(),
            serde_json::to_string_pretty(&tree).unwrap()
        );

        let mut built: Stamps = [("z".to_string(), stamp(1)), ("y".to_string(), stamp(2))]
            .into_iter()
            .collect();
        assert_eq!(built.keys().collect::<Vec<_>>(), ["y", "z"]);
        // Many at once, out of order, one path twice: sorted, the last kept.
        built.extend([
            ("x".to_string(), stamp(3)),
            ("z".to_string(), stamp(4)),
            ("a".to_string(), stamp(5)),
            ("x".to_string(), stamp(6)),
        ]);
        assert_eq!(built.keys().collect::<Vec<_>>(), ["a", "x", "y", "z"]);
        assert_eq!(built.get("x"), Some(&stamp(6)));
        assert_eq!(built.get("z"), Some(&stamp(4)));
    }
}
