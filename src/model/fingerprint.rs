//! The fingerprint of a task: a blake3 hash of what the task *is* (its
//! command; its prompt, system text, schema and model parameters when it
//! asks a model; the item of a fan-out instance), but not how it is run
//! (its timeout).
//!
//! A recorded fingerprint that differs from the current one makes the task
//! stale with the reason "command changed" (or "prompt changed"; "its item
//! changed" for an instance whose template fingerprint is the same).

/// Bump when the encoding changes, so old records read as "changed".
const VERSION: &str = "planexe-fingerprint-v1";

/// Collects labelled fields into a hash. Each field is length-prefixed, so
/// no two different field lists hash the same. The fields are gathered and
/// hashed at once: a command's fingerprint is a few short fields, and each
/// update of a hasher costs more than copying them (resolving ten thousand
/// tasks hashes ten thousand).
pub struct Fingerprint {
    bytes: Vec<u8>,
}

impl Fingerprint {
    pub fn new(kind: &str) -> Self {
        let mut fp = Fingerprint {
            bytes: Vec::with_capacity(128),
        };
        fp.field("version", VERSION.as_bytes());
        fp.field("kind", kind.as_bytes());
        fp
    }

    pub fn field(&mut self, label: &str, value: &[u8]) -> &mut Self {
        for part in [label.as_bytes(), value] {
            self.bytes
                .extend_from_slice(&(part.len() as u64).to_le_bytes());
            self.bytes.extend_from_slice(part);
        }
        self
    }

    /// The hex digest, shortened to 32 hex digits (128 bits).
    pub fn finish(&self) -> String {
        let hex = blake3::hash(&self.bytes).to_hex();
        hex[..32].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_unambiguous() {
        let a = Fingerprint::new("command").field("command", b"ab").finish();
        let b = Fingerprint::new("command").field("command", b"a").finish();
        let c = Fingerprint::new("command").field("command", b"ab").finish();
        assert_ne!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.len(), 32);
    }

    /// The hash of the fields as written since fingerprints were first
    /// recorded (one hasher updated field by field): records made before
    /// stay current.
    #[test]
    fn the_digest_is_that_of_the_length_prefixed_fields() {
        let mut hasher = blake3::Hasher::new();
        for part in [
            &b"version"[..],
            VERSION.as_bytes(),
            b"kind",
            b"command",
            b"command",
            b"cat a > b",
        ] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let expected = hasher.finalize().to_hex()[..32].to_string();
        let got = Fingerprint::new("command")
            .field("command", b"cat a > b")
            .finish();
        assert_eq!(got, expected);
        // What planexe recorded for `cat a > b` before the fields were gathered.
        assert_eq!(got, "9873a8c7c1e8f20a03492b99f2d27426");
    }
}
