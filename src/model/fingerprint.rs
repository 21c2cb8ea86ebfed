//! The fingerprint of a task: a blake3 hash of what the task *is* (its
//! command; its prompt, system text, schema and model parameters when it
//! asks a model; the item of a fan-out instance), but not how it is run
//! (its timeout).
//!
//! A recorded fingerprint that differs from the current one makes the task
//! stale with the reason "command changed" (or "prompt changed").

/// Bump when the encoding changes, so old records read as "changed".
const VERSION: &str = "planexe-fingerprint-v1";

/// Collects labelled fields into a hash. Each field is length-prefixed, so
/// no two different field lists hash the same.
pub struct Fingerprint {
    hasher: blake3::Hasher,
}

impl Fingerprint {
    pub fn new(kind: &str) -> Self {
        let mut fp = Fingerprint {
            hasher: blake3::Hasher::new(),
        };
        fp.field("version", VERSION.as_bytes());
        fp.field("kind", kind.as_bytes());
        fp
    }

    pub fn field(&mut self, label: &str, value: &[u8]) -> &mut Self {
        for part in [label.as_bytes(), value] {
            self.hasher.update(&(part.len() as u64).to_le_bytes());
            self.hasher.update(part);
        }
        self
    }

    /// The hex digest, shortened to 32 hex digits (128 bits).
    pub fn finish(&self) -> String {
        let hex = self.hasher.finalize().to_hex();
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
}
