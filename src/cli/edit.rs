//! `planexe edit [FILE] [--keep TASK... [--no-check]] [-y]`: edit a source of the
//! pipeline (default: its plan) in the user's editor, show what the edit
//! makes stale, ask, and rebuild.
//!
//! Invariants: nothing is built unless the file's content changed (by
//! hash, not mtime) and the editor exited 0; the list shown before the
//! question is what the build will run. `--keep` is `planexe touch`
//! (`exec::touch`, its checks and `--no-check` too): its dry run
//! ([`touch::assume`], which runs the checks, so a refusal comes before
//! the question) shapes the list, and the real touch, checked again, is
//! written only once the user said yes, just before the build, so
//! answering no leaves the run as the edit left it.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::args::{BuildArgs, Cli, EditArgs};
use super::printer::Printer;
use super::Context;
use crate::error::{Error, Result};
use crate::exec::build::{Build, BuildOptions};
use crate::exec::observer::Silent;
use crate::exec::{touch, Interrupt};
use crate::model::{Advice, Lists};
use crate::plan::Session;

pub fn edit(cli: &Cli, ctx: &Context, args: &EditArgs, printer: &mut Printer) -> Result<()> {
    let session = super::open(cli, ctx, printer)?;
    // Unknown names are refused before anything is edited.
    session.tasks_named(&args.keep)?;
    let file = chosen(&session, args.file.as_deref())?;
    let shown = session.run_dir.show(&file);
    // Refused now, not after the user's edit, while a build runs here: the
    // build would read the file half way through.
    drop(session.run_dir.lock("edit")?);
    drop(session);

    let before = content_hash(&file)?;
    let editor = editor(ctx);
    run_editor(&editor, &file)?;
    if content_hash(&file)? == before {
        printer.note(&format!("{shown} unchanged; nothing to rebuild"));
        return Ok(());
    }

    // Opened again: the edit may have been the pipeline file itself.
    let located = ctx.location(cli)?.locate()?;
    let mut session = Session::open(located, &ctx.model(None), Lists::Unproduced)?;
    let interrupt = Interrupt::signals();
    let env = ctx.scrubbing_env();
    let checking = super::touch::checking(&env, args.no_check, &interrupt);
    let kept = touch::assume(&mut session, &args.keep, checking)?;
    let stale = would_run(&mut session)?;
    // A kept task below a task the edit re-runs runs again all the same
    // (what it read changes): said once, on its own line.
    let runs_again = |task: &str| stale.iter().find(|(t, _)| t == task).map(|(_, r)| r);
    for kept in &kept {
        match runs_again(&kept.task) {
            Some(reason) => printer.data(&format!(
                "{}: kept (--keep), but {reason}: it runs again",
                kept.task
            )),
            None => printer.data(&format!("{}: kept (--keep)", kept.task)),
        }
    }
    for (task, reason) in &stale {
        if !kept.iter().any(|k| &k.task == task) {
            printer.data(&format!("{task}: {reason}"));
        }
    }
    if !stale.is_empty() && !args.yes && !confirm(stale.len(), session.advice())? {
        printer.note(&format!("nothing rebuilt; {shown} keeps your edit"));
        return Ok(());
    }
    if !args.keep.is_empty() {
        // A build started while the user edited: waited for, as the
        // rebuild below waits.
        let (mut session, _lock) = super::open_locked(cli, ctx, printer, "touch", false)?;
        super::recover(&mut session, printer)?;
        for kept in touch::touch(&mut session, &args.keep, checking)? {
            if runs_again(&kept.task).is_none() {
                printer.note(&format!("kept {}", kept.task));
            }
            super::touch::report(&kept, session.advice(), printer);
        }
    }
    super::build::build(cli, ctx, &BuildArgs::default(), None, printer)
}

/// The file to edit, as an absolute path: `file` (relative to the current
/// directory), else the pipeline's plan. It must be a source of the
/// pipeline inside the run directory, or the pipeline file.
fn chosen(session: &Session, file: Option<&Path>) -> Result<PathBuf> {
    let root = session.run_dir.root();
    let Some(file) = file else {
        return default_file(session).map(|rel| root.join(rel));
    };
    let cwd = std::env::current_dir().map_err(|e| Error::io_at(Path::new("."), e))?;
    let path = canonical(&cwd.join(file))?;
    if canonical(&session.pipeline.path).ok().as_ref() == Some(&path) {
        return Ok(path);
    }
    let canonical_root = canonical(root)?;
    let is_source = path
        .strip_prefix(&canonical_root)
        .is_ok_and(|rel| sources(session).any(|source| Path::new(source) == rel));
    if !is_source {
        // Each source once, however many tasks read it.
        let mut seen = std::collections::HashSet::new();
        let mut shown: Vec<&str> = sources(session).filter(|s| seen.insert(*s)).collect();
        shown.truncate(8);
        return Err(Error::usage(format!(
            "{} is not a source of the pipeline or the pipeline file",
            file.display()
        ))
        .hint(if shown.is_empty() {
            "the pipeline reads no source file; edit the pipeline file".to_string()
        } else {
            format!(
                "sources: {}; or the pipeline file, {}",
                shown.join(", "),
                session.pipeline.display
            )
        }));
    }
    Ok(path)
}

/// `plan.txt` if a task reads it, else the first source in declaration
/// order.
fn default_file(session: &Session) -> Result<String> {
    if sources(session).any(|s| s == "plan.txt") {
        return Ok("plan.txt".to_string());
    }
    sources(session).next().map(str::to_string).ok_or_else(|| {
        Error::usage("the pipeline reads no source file, so there is no plan to edit").hint(
            format!(
                "name the file to edit: planexe edit FILE (the pipeline file is {})",
                session.pipeline.display
            ),
        )
    })
}

/// Inputs no task produces, in declaration order (repeats included), then
/// the list files of `foreach` fan-outs that no task writes (a list is an
/// input of its fan-out: editing it makes the instances its new items
/// name stale).
fn sources(session: &Session) -> impl Iterator<Item = &str> + '_ {
    let graph = &session.graph;
    let inputs = (graph.tasks())
        .flat_map(|t| t.inputs.iter())
        .filter(|i| i.producer.is_none())
        .map(|i| i.path.as_str());
    let lists = (graph.fanouts.values())
        .filter_map(|group| group.list.as_deref())
        .filter(|list| graph.producer(list).is_none());
    inputs.chain(lists)
}

/// `path` with its folder resolved; the file itself may not exist yet (a
/// source the user is about to write).
fn canonical(path: &Path) -> Result<PathBuf> {
    if let Ok(found) = std::fs::canonicalize(path) {
        return Ok(found);
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|p| p.join(name))
            .map_err(|e| Error::io_at(parent, e)),
        _ => Err(Error::usage(format!("cannot edit {}", path.display()))),
    }
}

/// The file's content hash; `None` while it does not exist.
fn content_hash(path: &Path) -> Result<Option<blake3::Hash>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(blake3::hash(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io_at(path, e)),
    }
}

/// `$VISUAL`, else `$EDITOR`, else `vi`.
fn editor(ctx: &Context) -> String {
    ["VISUAL", "EDITOR"]
        .into_iter()
        .filter_map(|name| ctx.env().get(name))
        .find(|v| !v.trim().is_empty())
        .unwrap_or("vi")
        .to_string()
}

/// Runs `editor` on `file` through `sh`, so an editor with arguments
/// (`code --wait`) works, with the terminal inherited. Ctrl-C meanwhile
/// is the editor's (planexe ignores it, as git does), not planexe's.
fn run_editor(editor: &str, file: &Path) -> Result<()> {
    let failed = |what: String| {
        Error::usage(format!("editor `{editor}` {what}; nothing was built"))
            .hint("set $VISUAL or $EDITOR to an editor that exits 0 when you save")
    };
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(OsString::from(file))
        .spawn()
        .map_err(|e| failed(format!("could not start: {e}")))?;
    let status = {
        let _ignored = IgnoreInterrupts::new();
        child.wait()
    }
    .map_err(|e| failed(format!("could not be waited for: {e}")))?;
    if status.success() {
        return Ok(());
    }
    Err(failed(match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_string(),
    }))
}

/// SIGINT and SIGQUIT ignored by planexe until dropped.
struct IgnoreInterrupts {
    previous: [libc::sighandler_t; 2],
}

impl IgnoreInterrupts {
    fn new() -> IgnoreInterrupts {
        // SAFETY: `signal` with SIG_IGN installs no code; the previous
        // dispositions are restored by `drop` on the same signals.
        unsafe {
            IgnoreInterrupts {
                previous: [
                    libc::signal(libc::SIGINT, libc::SIG_IGN),
                    libc::signal(libc::SIGQUIT, libc::SIG_IGN),
                ],
            }
        }
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        // SAFETY: restores the dispositions `new` replaced.
        unsafe {
            libc::signal(libc::SIGINT, self.previous[0]);
            libc::signal(libc::SIGQUIT, self.previous[1]);
        }
    }
}

/// What a build would run now, and why: `planexe build -n`'s list.
fn would_run(session: &mut Session) -> Result<Vec<(String, String)>> {
    let options = BuildOptions {
        dry_run: true,
        ..BuildOptions::default()
    };
    let report = Build {
        options: &options,
        env: &crate::exec::Env::default(),
        interrupt: &Interrupt::new(),
        observer: &Silent,
        executor: None,
        slots: None,
    }
    .run(session)?;
    Ok(report.would_run)
}

/// Asks on the terminal; refuses without one.
fn confirm(tasks: usize, advice: &Advice) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::usage(format!(
            "the edit makes {tasks} task(s) stale; rebuilding needs confirmation, but stdin is not a terminal"
        ))
        .hint(format!(
            "run {} to rebuild, or {} -y",
            advice.command("build"),
            advice.command("edit")
        )));
    }
    Ok(super::clean::ask(
        &format!("Rebuild {tasks} task(s)? [Y/n] "),
        true,
    ))
}
