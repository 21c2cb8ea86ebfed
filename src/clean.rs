//! `planexe clean`: delete what tasks produced (their outputs, sidecars and
//! logs), optionally with everything downstream. Lists every file first and
//! asks on a terminal; without one it needs `-y`. Never touches a source
//! file: only declared outputs of the named tasks are candidates.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use crate::cli::{CleanArgs, Cli};
use crate::error::{Error, Result};
use crate::printer::Printer;
use crate::rundir;
use crate::session::Session;

pub fn clean(cli: &Cli, args: &CleanArgs, printer: &Printer) -> Result<()> {
    let mut session = Session::open(cli, printer, None)?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(session.run_dir.lock("clean")?)
    };
    let graph = &session.graph;
    let selected = if args.all {
        vec![true; graph.tasks.len()]
    } else {
        let mut roots = Vec::new();
        for name in &args.tasks {
            match graph.named(name) {
                Some(found) => roots.extend(found),
                None => {
                    return Err(Error::usage(format!("unknown task `{name}`"))
                        .hint("run `planexe status` to list tasks"))
                }
            }
        }
        if args.downstream {
            graph.downstream(&roots)
        } else {
            let mut s = vec![false; graph.tasks.len()];
            for r in roots {
                s[r] = true;
            }
            s
        }
    };
    let run_dir = &session.run_dir;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut tasks = Vec::new();
    for &t in &graph.order {
        if !selected[t] {
            continue;
        }
        let task = &graph.tasks[t];
        tasks.push(task.name.clone());
        for out in &task.outputs {
            let path = run_dir.path(&out.path);
            if std::fs::symlink_metadata(&path).is_ok() {
                files.push((out.path.clone(), path));
            }
        }
        for path in [
            run_dir.status_path(&task.name),
            run_dir.done_path(&task.name),
            run_dir.task_log_path(&task.name),
        ] {
            if path.exists() {
                let shown = path
                    .strip_prefix(run_dir.root())
                    .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
                files.push((shown, path));
            }
        }
    }
    // `--all` takes the run directory back to empty: the next build starts
    // a new run.
    if args.all {
        for name in ["run.json", "summary.json"] {
            let path = run_dir.state_dir().join(name);
            if path.exists() {
                files.push((format!(".planexe/{name}"), path));
            }
        }
    }
    if files.is_empty() {
        printer.note("nothing to clean");
        if !args.dry_run {
            for name in &tasks {
                session.store.forget(&session.run_dir, name)?;
            }
        }
        return Ok(());
    }
    for (shown, _) in &files {
        printer.data(shown);
    }
    if args.dry_run {
        printer.note(&format!("would delete {} file(s)", files.len()));
        return Ok(());
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::usage(format!(
                "clean would delete {} file(s) and needs confirmation, but stdin is not a terminal",
                files.len()
            ))
            .hint("pass -y to delete without asking, or --dry-run to only list"));
        }
        eprint!("Proceed? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            printer.note("nothing deleted");
            return Ok(());
        }
    }
    for (_, path) in &files {
        rundir::remove_if_exists(path)?;
    }
    for name in &tasks {
        session.store.forget(&session.run_dir, name)?;
    }
    printer.note(&format!("deleted {} file(s)", files.len()));
    Ok(())
}
