//! The files a template reads as text: a prompt task's inputs (`inputs`),
//! and the outputs a judge scores (`outputs`, and `output`, the first).
//! Each file is read when a template first names it, once for all the
//! templates of one run of a task, so a file no template names is never
//! read: a task may list a binary or a large file it only depends on, and
//! a command may write one beside the text its judge scores. A file that
//! is read must be UTF-8 text: otherwise the render fails, saying which
//! file, where and what to do, rather than send the model its bytes
//! replaced.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::limits::{self, ReadError};
use crate::store::{files, ErrorKind};

/// What a template sees as `inputs` or `outputs`: each path to its text,
/// read when first named ([`Files::trouble`] says why one could not be).
#[derive(Debug, Clone)]
pub struct Files(Arc<Set>);

#[derive(Debug)]
struct Set {
    role: Role,
    /// Each path, to its file.
    files: BTreeMap<String, PathBuf>,
    /// The first path as given (a command's first output: `output`).
    first: Option<String>,
    /// What reading each one gave, once read.
    read: Mutex<BTreeMap<String, Reading>>,
}

/// Whose files they are: how much of each is read, and what a failure
/// says.
#[derive(Debug, Clone, Copy)]
enum Role {
    /// A task's inputs: read whole, up to [`limits::MAX_FILE_BYTES`].
    Inputs,
    /// The outputs a judge scores: read up to a number of bytes, the rest
    /// cut with a note of how much.
    Outputs(u64),
}

/// What reading one file gave: its text, or the kind of failure and why.
type Reading = Result<minijinja::Value, (ErrorKind, String)>;

impl Files {
    /// A task's inputs: each input path (as templates name it) and where
    /// it is on disk.
    pub fn inputs(files: impl IntoIterator<Item = (String, PathBuf)>) -> Files {
        Files::new(Role::Inputs, files)
    }

    /// The outputs a judge scores, each read up to `cap` bytes.
    pub fn outputs(files: impl IntoIterator<Item = (String, PathBuf)>, cap: u64) -> Files {
        Files::new(Role::Outputs(cap), files)
    }

    /// Files whose texts are known already (a prompt task's answer, judged
    /// before it is written).
    pub fn known(texts: impl IntoIterator<Item = (String, String)>) -> Files {
        let (mut files, mut read, mut first) = (BTreeMap::new(), BTreeMap::new(), None);
        for (path, text) in texts {
            first.get_or_insert_with(|| path.clone());
            files.insert(path.clone(), PathBuf::new());
            read.insert(path, Ok(minijinja::Value::from(text)));
        }
        Files(Arc::new(Set {
            role: Role::Outputs(u64::MAX),
            files,
            first,
            read: Mutex::new(read),
        }))
    }

    fn new(role: Role, files: impl IntoIterator<Item = (String, PathBuf)>) -> Files {
        let files: Vec<(String, PathBuf)> = files.into_iter().collect();
        Files(Arc::new(Set {
            role,
            first: files.first().map(|(path, _)| path.clone()),
            files: files.into_iter().collect(),
            read: Mutex::default(),
        }))
    }

    /// The first file (by path) a template named that could not be read as
    /// text, with the kind of the failure: `missing_input` for an input
    /// that is gone or cannot be opened (`io` for an output), `template`
    /// for one that is not text a template can hold (not UTF-8, an input
    /// over the size limit, a folder).
    pub fn trouble(&self) -> Option<(ErrorKind, String)> {
        let read = self.0.read.lock().unwrap_or_else(|p| p.into_inner());
        read.values().find_map(|r| r.as_ref().err().cloned())
    }

    /// The text of `path`, read now if no template named it yet (a failure
    /// is kept for [`Files::trouble`], the text is then empty); `None` when
    /// there is no such file.
    pub fn text(&self, path: &str) -> Option<minijinja::Value> {
        let file = self.0.files.get(path)?;
        let mut read = self.0.read.lock().unwrap_or_else(|p| p.into_inner());
        let got = read
            .entry(path.to_string())
            .or_insert_with(|| read_text(self.0.role, path, file).map(minijinja::Value::from));
        Some(got.clone().unwrap_or_else(|_| minijinja::Value::from("")))
    }

    /// The paths, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.files.keys().map(String::as_str)
    }

    /// The first path as given, not in order: a command's first output
    /// (`output` in its judge's prompt).
    pub fn first(&self) -> Option<&str> {
        self.0.first.as_deref()
    }
}

impl minijinja::value::Object for Files {
    fn get_value(self: &Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        self.text(key.as_str()?)
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Values(self.paths().map(minijinja::Value::from).collect())
    }
}

/// The text of `path`, read from `file` as `role` says.
fn read_text(role: Role, path: &str, file: &Path) -> Result<String, (ErrorKind, String)> {
    let (bytes, cut) = match role {
        Role::Inputs => (read_input(path, file)?, None),
        Role::Outputs(cap) => read_output(path, file, cap)?,
    };
    let (text, at) = match String::from_utf8(bytes) {
        Ok(text) => (text, None),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            // A character cut at the end by the cap is only cut.
            let cut_short = cut.is_some() && e.utf8_error().error_len().is_none();
            let mut bytes = e.into_bytes();
            if cut_short {
                bytes.truncate(at);
                (String::from_utf8(bytes).unwrap_or_default(), None)
            } else {
                (String::new(), Some((at, bytes[at])))
            }
        }
    };
    if let Some((at, byte)) = at {
        let (what, advice) = match role {
            Role::Inputs => ("input", "a template reads an input as text: make a text file of it with a command task first, or leave it out of the template (an input the template does not name is not read, and still orders the task and makes it stale)"),
            Role::Outputs(_) => ("output", "a judge reads an output as text: name in its prompt only the outputs it can read (`outputs['PATH']`; `output` is the first)"),
        };
        return Err((
            ErrorKind::Template,
            format!("{what} {path} is not UTF-8 text: byte 0x{byte:02X} at offset {at} cannot start or continue a character; {advice}"),
        ));
    }
    Ok(match cut {
        Some(more) => format!("{text}\n[... {more} more bytes not shown]"),
        None => text,
    })
}

fn read_input(path: &str, file: &Path) -> Result<Vec<u8>, (ErrorKind, String)> {
    limits::read_bounded(file).map_err(|e| match e {
        ReadError::Missing | ReadError::Io(_) => (
            ErrorKind::MissingInput,
            format!("cannot read input {path}: {e}"),
        ),
        ReadError::Folder | ReadError::TooLarge(_) => (
            ErrorKind::Template,
            format!("input {path} cannot be read as text: {e}; a template reads an input as text: leave it out of the template (an input the template does not name is not read)"),
        ),
    })
}

/// At most `cap` bytes of an output (not following a link), and how many
/// more it has, if any.
fn read_output(
    path: &str,
    file: &Path,
    cap: u64,
) -> Result<(Vec<u8>, Option<u64>), (ErrorKind, String)> {
    let failed = |e: std::io::Error| {
        (
            ErrorKind::Io,
            format!("cannot read output {path} for the judge: {e}"),
        )
    };
    let f = files::open_read(file).map_err(failed)?;
    let size = f.metadata().map_err(failed)?.len();
    let mut bytes = Vec::with_capacity(size.min(cap) as usize);
    f.take(cap).read_to_end(&mut bytes).map_err(failed)?;
    Ok((bytes, (size > cap).then(|| size - cap)))
}
