//! The certificate's bytes: a magic line, this planexe's version, the
//! generation, what it is keyed by, and one record per entry, closed by a
//! blake3 of everything before it, so a torn or altered file is no
//! certificate. Every read is bounds-checked.

use super::stat::FileId;
use super::{Certificate, Entry, MAGIC};

impl Certificate {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 96);
        out.extend_from_slice(MAGIC);
        put_str(&mut out, env!("CARGO_PKG_VERSION"));
        out.extend_from_slice(&self.generation.to_le_bytes());
        put_str(&mut out, &self.pipeline);
        match &self.model {
            Some(m) => {
                out.push(1);
                put_str(&mut out, m);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.tasks.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            put_str(&mut out, &e.path);
            out.push(e.id.kind);
            out.extend_from_slice(&e.id.size.to_le_bytes());
            out.extend_from_slice(&e.id.mtime_ns.to_le_bytes());
            out.extend_from_slice(&e.id.ctime_ns.to_le_bytes());
            out.extend_from_slice(&e.id.ino.to_le_bytes());
            put_str(&mut out, e.hash.as_deref().unwrap_or(""));
            out.push(u8::from(e.task));
            out.push(u8::from(e.racy));
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Certificate> {
        let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if blake3::hash(body).as_bytes() != sum {
            return None;
        }
        let mut r = Reader(body.strip_prefix(MAGIC)?);
        if r.str()? != env!("CARGO_PKG_VERSION") {
            return None;
        }
        let generation = r.u64()?;
        let pipeline = r.str()?.to_string();
        let model = match r.u8()? {
            0 => None,
            _ => Some(r.str()?.to_string()),
        };
        let tasks = r.u64()?;
        let count = usize::try_from(r.u64()?).ok()?;
        let mut entries = Vec::with_capacity(count.min(body.len() / 40));
        for _ in 0..count {
            let path = r.str()?.to_string();
            let id = FileId {
                kind: r.u8()?,
                size: r.u64()?,
                mtime_ns: r.u64()? as i64,
                ctime_ns: r.u64()? as i64,
                ino: r.u64()?,
            };
            let hash = r.str()?;
            let task = r.u8()? != 0;
            let racy = r.u8()? != 0;
            entries.push(Entry {
                path,
                id,
                hash: (!hash.is_empty()).then(|| hash.to_string()),
                task,
                racy,
            });
        }
        r.0.is_empty().then_some(Certificate {
            generation,
            pipeline,
            model,
            tasks,
            entries,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over the certificate's bytes; every read is bounds-checked.
/// The excerpt reads with it too.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A length-prefixed run of bytes.
    pub(super) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(len)
    }

    pub(super) fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::super::stat::ABSENT;
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let cert = Certificate {
            generation: 42,
            pipeline: "/p/pipeline.toml".into(),
            model: Some("m".into()),
            tasks: 2,
            entries: vec![
                Entry {
                    path: "out/a.txt".into(),
                    id: FileId {
                        kind: 1,
                        size: 3,
                        mtime_ns: -5,
                        ctime_ns: 7,
                        ino: 9,
                    },
                    hash: Some("ab".into()),
                    task: true,
                    racy: true,
                },
                Entry {
                    path: ".planexe/log".into(),
                    id: ABSENT,
                    hash: None,
                    task: false,
                    racy: false,
                },
            ],
        };
        let bytes = cert.encode();
        let back = Certificate::decode(&bytes).expect("decodes");
        assert_eq!(back.generation, 42);
        assert_eq!(back.pipeline, cert.pipeline);
        assert_eq!(back.model, cert.model);
        assert_eq!(back.tasks, 2);
        assert_eq!(back.entries.len(), 2);
        assert_eq!(back.entries[0].id, cert.entries[0].id);
        assert_eq!(back.entries[0].hash.as_deref(), Some("ab"));
        assert_eq!(back.entries[1].hash, None);
        assert!(back.entries[0].racy && !back.entries[1].racy);
        // A torn or altered certificate is no certificate.
        assert!(Certificate::decode(&bytes[..bytes.len() - 1]).is_none());
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 6] ^= 1;
        assert!(Certificate::decode(&flipped).is_none());
        assert!(Certificate::decode(b"").is_none());
    }
}
