//! The one owner of the terminal. Progress and messages go to stderr; only
//! data a user may pipe (dry-run lists, status) goes to stdout.
//!
//! On a live terminal (a terminal whose `$TERM` is set and not `dumb`;
//! decided by the caller) and without `--quiet`, running tasks show as
//! indicatif bars: an overall `N/M` line and one line per running task with its
//! elapsed time. Otherwise each task start and finish is one plain line with
//! no progress bar. Colours come from the one palette; whether there are
//! any (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`, a terminal: see
//! `cli::colour`) is decided once, by the caller, when the printer is made.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;
use crate::exec::observer::TaskEnd;
use crate::observe::palette::{Paint, Style};
use crate::observe::Standing;

/// How much to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Only errors.
    Quiet,
    Normal,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    running: HashMap<String, ProgressBar>,
}

pub struct Printer {
    verbosity: Verbosity,
    paint: Paint,
    bars: Option<Bars>,
    /// Whether stderr is a terminal that redraws lines: bars there, plain
    /// lines anywhere else.
    live: bool,
    /// Whether a warning was printed.
    warned: std::cell::Cell<bool>,
    /// Whether data was written on stdout.
    wrote_data: std::cell::Cell<bool>,
}

impl Printer {
    /// A printer for stderr; `colour`: whether its text gets colour;
    /// `live`: whether stderr is a terminal that redraws lines.
    pub fn new(verbosity: Verbosity, colour: bool, live: bool) -> Printer {
        Printer {
            verbosity,
            paint: Paint::new(colour),
            bars: None,
            live,
            warned: std::cell::Cell::new(false),
            wrote_data: std::cell::Cell::new(false),
        }
    }

    fn paint(&self, style: Style, text: &str) -> String {
        self.paint.paint(style, text)
    }

    /// Prints an error with its hints. Always shown, even with `--quiet`.
    pub fn error(&self, error: &Error) {
        let mut text = format!("{} {error}", self.paint(Style::Error, "error:"));
        for hint in error.hints() {
            text.push_str(&format!("\n{} {hint}", self.paint(Style::Hint, "hint:")));
        }
        self.line(&text);
    }

    pub fn warn(&self, message: &str) {
        self.warned.set(true);
        self.line(&format!(
            "{} {message}",
            self.paint(Style::Warning, "warning:")
        ));
    }

    /// Whether any warning was printed so far.
    pub fn warned(&self) -> bool {
        self.warned.get()
    }

    /// A normal-verbosity message on stderr.
    pub fn note(&self, message: &str) {
        if self.verbosity != Verbosity::Quiet {
            self.line(message);
        }
    }

    /// Writes a line to stderr without tearing the progress bars, in one
    /// write: lines of builds that share a stderr (`make -j` over several
    /// runs) never run into each other.
    fn line(&self, text: &str) {
        let mut line = String::with_capacity(text.len() + 1);
        line.push_str(text);
        line.push('\n');
        let write = || {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        };
        match &self.bars {
            Some(bars) => bars.multi.suspend(write),
            None => write(),
        }
    }

    /// Starts progress reporting for a build of `total` tasks.
    pub fn begin(&mut self, total: usize) {
        if self.verbosity == Verbosity::Quiet || !self.live || total == 0 {
            return;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(total as u64));
        overall.set_style(
            ProgressStyle::with_template("{pos}/{len} tasks [{elapsed_precise}] {wide_bar}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(200));
        self.bars = Some(Bars {
            multi,
            overall,
            running: HashMap::new(),
        });
    }

    /// More tasks joined the build (a fan-out expanded): the overall bar
    /// counts them.
    pub fn grow(&mut self, added: usize) {
        if let Some(bars) = &self.bars {
            bars.overall.inc_length(added as u64);
        }
    }

    pub fn task_started(&mut self, name: &str) {
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        match &mut self.bars {
            Some(bars) => {
                let bar = bars.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {prefix} {elapsed} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(name.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.running.insert(name.to_string(), bar);
            }
            None => self.line(&format!("start  {name}")),
        }
    }

    /// Updates the progress line of a running task (terminal only).
    pub fn task_progress(&mut self, name: &str, message: &str) {
        if let Some(bar) = self.bars.as_ref().and_then(|b| b.running.get(name)) {
            bar.set_message(message.to_string());
        }
    }

    /// A task ended done.
    pub fn task_done(&mut self, name: &str, elapsed: Duration) {
        self.task_ended(name);
        if self.verbosity != Verbosity::Quiet {
            let text = format!(
                "{} {name} ({:.2}s)",
                self.paint(Style::Success, "done  "),
                elapsed.as_secs_f64()
            );
            self.line(&text)
        }
    }

    /// A task succeeded but its result could not be recorded (a full
    /// disk): not `done`, since the next build runs it again. Printed
    /// even with `--quiet`, as a warning is.
    pub fn task_unrecorded(&mut self, name: &str, elapsed: Duration) {
        self.task_ended(name);
        let text = format!(
            "{} {name} ({:.2}s): it ran, but its result could not be recorded; it runs again next build",
            self.paint(Style::Warning, "ran   "),
            elapsed.as_secs_f64()
        );
        self.line(&text)
    }

    /// A task failed (`message`), with the tail of its output, indented,
    /// and where what it wrote is kept (`end`): one write, so that under
    /// `make -j` no other build's line lands between them. The time is on
    /// the first line, which says what failed (a message over several
    /// lines, with a code frame, ends with its hint).
    pub fn task_failed(&mut self, name: &str, message: &str, end: &TaskEnd) {
        self.task_ended(name);
        let (first, rest) = match message.split_once('\n') {
            Some((first, rest)) => (first, format!("\n{rest}")),
            None => (message, String::new()),
        };
        let mut text = format!(
            "{} {name}: {first} ({:.2}s){rest}",
            self.paint(Style::Error, "FAILED"),
            end.elapsed.as_secs_f64()
        );
        for l in end.tail {
            text.push_str("\n  | ");
            text.push_str(l);
        }
        if !end.left.is_empty() {
            text.push_str(&format!(
                "\n  what it wrote is kept in {}",
                end.left.join(", ")
            ));
            if end.restored > 0 {
                text.push_str("; the outputs of its last good run are back in place");
            }
        }
        self.line(&text)
    }

    /// A task's command failed (`why`) after writing every output, and its
    /// rescue's checks examine what it wrote: `failed-pending-check`.
    pub fn task_pending_check(&mut self, name: &str, why: &str) {
        if let Some(bar) = self.bars.as_ref().and_then(|b| b.running.get(name)) {
            bar.set_message("failed-pending-check: its checks examine what it wrote");
        }
        let text = format!(
            "{} {name}: {why}; failed-pending-check: its checks examine what it wrote",
            self.paint(Style::State(Standing::FailedPendingCheck), "check ")
        );
        self.line(&text)
    }

    /// A task's command failed but its checks accepted what it wrote
    /// (`rescue = true`): done, said apart from a plain success.
    pub fn task_rescued(&mut self, name: &str, elapsed: Duration) {
        self.task_ended(name);
        let text = format!(
            "{} {name}: the command failed; its checks accepted the outputs ({:.2}s)",
            self.paint(Style::Warning, "rescued"),
            elapsed.as_secs_f64()
        );
        self.line(&text)
    }

    /// A warn-severity check of a finished task failed.
    pub fn check_warning(&mut self, name: &str, check: &str, message: &str) {
        let text = format!(
            "{} {name}: {check}: {message}",
            self.paint(Style::Warning, "warn  ")
        );
        self.line(&text)
    }

    /// A task was stopped (Ctrl-C, SIGTERM): not a failure, so no FAILED
    /// line and no log.
    pub fn task_stopped(&mut self, name: &str, elapsed: Duration) {
        self.task_ended(name);
        let text = format!(
            "{} {name} ({:.2}s)",
            self.paint(Style::Warning, "stopped"),
            elapsed.as_secs_f64()
        );
        self.note(&text);
    }

    /// Takes a task's bar down and counts it.
    fn task_ended(&mut self, name: &str) {
        if let Some(bars) = &mut self.bars {
            if let Some(bar) = bars.running.remove(name) {
                bar.finish_and_clear();
                bars.multi.remove(&bar);
            }
            bars.overall.inc(1);
        }
    }

    /// A task turned out up to date once its upstream finished.
    pub fn task_skipped(&mut self, name: &str, why: &str) {
        if let Some(bars) = &mut self.bars {
            bars.overall.inc(1);
        }
        self.note(&format!("fresh  {name} ({why})"));
    }

    /// Ends progress reporting.
    pub fn end(&mut self) {
        if let Some(bars) = self.bars.take() {
            for (_, bar) in bars.running {
                bar.finish_and_clear();
            }
            bars.overall.finish_and_clear();
            let _ = bars.multi.clear();
        }
    }

    /// Clears a terminal's screen (`watch --clear`); nothing otherwise.
    pub fn clear_screen(&self) {
        if self.verbosity != Verbosity::Quiet && self.live {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\x1b[2J\x1b[H");
        }
    }

    /// Whether any data was written on stdout (or tried to be).
    pub fn wrote_data(&self) -> bool {
        self.wrote_data.get()
    }

    /// A line on stdout (pipeable data).
    pub fn data(&self, text: &str) {
        self.wrote_data.set(true);
        let mut line = String::with_capacity(text.len() + 1);
        line.push_str(text);
        line.push('\n');
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }

    /// Whether stdout is a terminal (where JSON is indented).
    pub fn stdout_is_terminal(&self) -> bool {
        std::io::stdout().is_terminal()
    }

    /// Writes `bytes` on stdout as they are, in one write: data made
    /// whole already (a status of a hundred thousand lines).
    pub fn bytes(&self, bytes: &[u8]) -> Result<(), Error> {
        let mut out = std::io::stdout().lock();
        self.written(out.write_all(bytes).and_then(|()| out.flush()))
    }

    /// The outcome of writing data on stdout: a reader that stopped
    /// reading (`| head`) is not an error.
    pub fn written(&self, written: std::io::Result<()>) -> Result<(), Error> {
        self.wrote_data.set(true);
        written
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::BrokenPipe => Ok(()),
                _ => Err(e),
            })
            .map_err(Error::Io)
    }

    /// Prints `value` as JSON on stdout: indented on a terminal, for a
    /// person; one compact line otherwise, for a program (`status --json`
    /// of 100,000 tasks is 40 MB indented), streamed as it is made.
    pub fn json<T: serde::Serialize>(&self, value: &T) -> Result<(), Error> {
        self.wrote_data.set(true);
        let stdout = std::io::stdout();
        let terminal = stdout.is_terminal();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let written = if terminal {
            serde_json::to_writer_pretty(&mut out, value)
        } else {
            serde_json::to_writer(&mut out, value)
        };
        written
            .map_err(std::io::Error::other)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
            .or_else(|e| match e.kind() {
                // A reader that stopped reading (`| head`) is not an error.
                std::io::ErrorKind::BrokenPipe => Ok(()),
                _ => Err(e),
            })
            .map_err(Error::Io)
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.end();
    }
}
