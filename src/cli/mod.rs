//! The command line: [`run`] parses the arguments, runs one command, prints
//! any error once and returns the exit status. This layer owns everything
//! that belongs to a process rather than to a run directory: clap's
//! definitions ([`args`]), the terminal ([`printer`]), stdin, the current
//! directory and the environment ([`Context`]); and one file per
//! subcommand, which calls the layers below and turns their data into
//! text.

mod annotate;
mod answers;
pub mod args;
mod build;
mod check;
mod clean;
mod colour;
mod edit;
mod error_json;
mod explain;
mod graph;
mod init;
mod mcp;
mod new;
mod notices;
pub mod printer;
mod report;
mod status;
mod touch;
mod watch;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

pub use args::Cli;
use args::{AnnotationsArg, ColorArg, Command};
use printer::{Printer, Verbosity};

use crate::error::{Error, Result, EXIT_OK, EXIT_USAGE};
use crate::exec::interrupt;
use crate::exec::jobserver::{Jobserver, Makeflags};
use crate::exec::{Env, Interrupt};
use crate::model::{Advice, Lists};
use crate::plan::session::{Location, ModelChoice};
use crate::plan::Session;
use crate::store::lock::{Lock, Waiting};
use crate::store::{CheckMode, RunDir};

/// What the CLI reads from the process, read once: the environment (for
/// builds, [`Context::env`]) and the variables planexe itself knows. The
/// current directory is read where a command needs it
/// ([`Context::location`]).
#[derive(Debug, Clone, Default)]
pub struct Context {
    env: Env,
    /// `$PLANEXE_PIPELINE`, when set and not empty.
    pipeline: Option<PathBuf>,
    /// `$PLANEXE_MODEL`, when set and not blank.
    model: Option<String>,
    /// `$PLANEXE_WEBHOOK_URL`, when set and not blank, trimmed.
    webhook: Option<String>,
    /// `$NO_COLOR` and `$CLICOLOR_FORCE`.
    colour_env: colour::ColourEnv,
    /// `$TERM` is unset or `dumb`: a terminal that can show neither colour
    /// nor lines redrawn in place (Emacs' compilation buffer, a CI runner's
    /// pseudo-terminal); planexe writes to it as to a log file.
    dumb_term: bool,
    /// `--color` (set by [`Context::with_color`]).
    color: ColorArg,
    /// `$GITHUB_ACTIONS` is `true`.
    github_actions: bool,
    /// `$GITHUB_WORKSPACE`, when set and absolute: what GitHub reads an
    /// annotation's file from, whatever folder a step runs in.
    github_workspace: Option<PathBuf>,
    /// `$MAKEFLAGS`: planexe run by a recipe of make.
    makeflags: Makeflags,
    /// The arguments the user ran planexe with, after its name (set by
    /// [`Context::with_args`]): the command a hint gives back.
    ran: Vec<String>,
}

impl Context {
    /// Reads the process's environment.
    pub fn from_env() -> Context {
        let env = Env::new(std::env::vars_os());
        let text = |name: &str| {
            env.get(name)
                .filter(|v| !v.trim().is_empty())
                .map(str::to_string)
        };
        match text("PLANEXE_STATS").as_deref() {
            Some("timeline") => crate::phases::enable_timeline(),
            Some(v) if v != "0" => crate::phases::enable(),
            _ => {}
        }
        Context {
            pipeline: std::env::var_os("PLANEXE_PIPELINE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            model: text("PLANEXE_MODEL"),
            // Trimmed once, here: the URL events go to and the one whose
            // token is scrubbed must be the same (a line end kept would
            // make the token a secret only when followed by it).
            webhook: text("PLANEXE_WEBHOOK_URL").map(|u| u.trim().to_string()),
            colour_env: colour::ColourEnv::from_vars(
                std::env::var_os("NO_COLOR").as_deref(),
                std::env::var_os("CLICOLOR_FORCE").as_deref(),
            ),
            dumb_term: std::env::var_os("TERM").is_none_or(|t| t.is_empty() || t == "dumb"),
            color: ColorArg::Auto,
            github_actions: env.get("GITHUB_ACTIONS") == Some("true"),
            github_workspace: std::env::var_os("GITHUB_WORKSPACE")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute()),
            makeflags: Makeflags::parse(env.get("MAKEFLAGS").unwrap_or_default()),
            env,
            ran: Vec::new(),
        }
    }

    /// The environment builds run in.
    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Refuses a `$PLANEXE_WEBHOOK_URL` no event could be sent to, as a
    /// hook's `url` is refused at load (exit 2, before anything runs), in
    /// words that do not quote it (its token is a secret).
    pub fn check_webhook(&self) -> Result<()> {
        let Some(url) = &self.webhook else {
            return Ok(());
        };
        let Some(flaw) = crate::model::endpoint::flaw(url.trim(), true) else {
            return Ok(());
        };
        Err(Error::usage(flaw.message("`$PLANEXE_WEBHOOK_URL`")).hint(
            "set it to a webhook such as https://hooks.example/T1/B2 (its token in the path or query, no user:...@), or unset it",
        ))
    }

    /// The environment builds run in, with `$PLANEXE_WEBHOOK_URL`'s token
    /// among its secrets: what a build, and anything that shows what a
    /// build's commands printed, scrubs, as it does the API keys.
    pub fn scrubbing_env(&self) -> Env {
        match &self.webhook {
            Some(url) => self.env.clone().with_url_secrets(url),
            None => self.env.clone(),
        }
    }

    /// Where the command works: `-C`, `-f` and `$PLANEXE_PIPELINE`, each
    /// relative to the current directory.
    pub fn location(&self, cli: &Cli) -> Result<Location> {
        let cwd =
            std::env::current_dir().map_err(|e| Error::io_at(std::path::Path::new("."), e))?;
        Ok(Location {
            run_dir: match &cli.directory {
                Some(dir) => cwd.join(dir),
                None => cwd.clone(),
            },
            file: cli
                .file
                .as_ref()
                .map(|f| (cwd.join(f), f.display().to_string())),
            env_file: self
                .pipeline
                .as_ref()
                .map(|f| (cwd.join(f), f.display().to_string())),
            named_dir: cli.directory.is_some(),
            advice: match &cli.directory {
                Some(dir) if !same_dir(&cwd.join(dir), &cwd) => {
                    Advice::COMMAND_LINE.in_run(&dir.display().to_string())
                }
                _ => Advice::COMMAND_LINE,
            }
            .ran(&self.ran),
        })
    }

    /// The model override: `--model` (`flag`), else `$PLANEXE_MODEL`.
    pub fn model(&self, flag: Option<&str>) -> ModelChoice {
        ModelChoice {
            flag: flag.map(str::to_string),
            env: self.model.clone(),
        }
    }

    /// What `$MAKEFLAGS` says.
    pub fn makeflags(&self) -> &Makeflags {
        &self.makeflags
    }

    /// `$PLANEXE_MODEL`.
    pub fn env_model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The context of a command run with `args` (the program's name
    /// first).
    pub fn with_args(mut self, args: &[OsString]) -> Context {
        let words = args.iter().skip(1);
        self.ran = words.map(|w| w.to_string_lossy().into_owned()).collect();
        self
    }

    /// The context with `--color`.
    pub fn with_color(mut self, color: ColorArg) -> Context {
        self.color = color;
        self
    }

    /// Whether text on stdout gets colour ([`colour::decide`]).
    pub fn stdout_colour(&self) -> bool {
        use std::io::IsTerminal;
        let terminal = std::io::stdout().is_terminal() && !self.dumb_term;
        colour::decide(self.color, self.colour_env, terminal)
    }

    /// Whether text on stderr gets colour ([`colour::decide`]).
    pub fn stderr_colour(&self) -> bool {
        colour::decide(self.color, self.colour_env, self.stderr_live())
    }

    /// Whether stderr is a terminal that redraws lines (and shows colour):
    /// a terminal, with `$TERM` set and not `dumb`. Only there does a build
    /// show progress bars; anywhere else it writes plain lines.
    pub fn stderr_live(&self) -> bool {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && !self.dumb_term
    }

    /// The folder an annotation's file is named from: the workspace
    /// (`$GITHUB_WORKSPACE`, which GitHub reads it from even when a step
    /// runs in a folder of its own), else the current directory.
    pub fn annotation_base(&self) -> PathBuf {
        self.github_workspace
            .clone()
            .unwrap_or_else(|| std::env::current_dir().unwrap_or_default())
    }

    /// Whether a build prints GitHub annotations: `--annotations` (`flag`),
    /// else `$GITHUB_ACTIONS` is `true`.
    pub fn github_annotations(&self, flag: Option<AnnotationsArg>) -> bool {
        match flag {
            Some(AnnotationsArg::Github) => true,
            Some(AnnotationsArg::None) => false,
            None => self.github_actions,
        }
    }
}

/// Runs planexe with `args` (including the program name) and returns the
/// process exit status.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // A Ctrl-C from the very start is either caught (by a build) or takes
    // its default action once the command is known; never lost in between.
    let held = interrupt::hold();
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            drop(held);
            let _ = e.print();
            let hint = args::misplaced_option_hint(&args, &e);
            if let Some(hint) = &hint {
                eprintln!("hint: {hint}");
            }
            if !e.use_stderr() {
                return EXIT_OK;
            }
            if error_json::line_asks_json(&args) {
                let hints: Vec<String> = hint.into_iter().collect();
                let doc = error_json::usage_document(&e.to_string(), &hints, EXIT_USAGE);
                let printer = Printer::new(Verbosity::Quiet, false, false);
                let _ = printer.json(&doc);
            }
            return EXIT_USAGE;
        }
    };
    let ctx = Context::from_env().with_args(&args).with_color(cli.color);
    // With `PLANEXE_STATS=1`, the whole command as one phase too: what the
    // named ones leave out is then the process's start and end.
    let whole = crate::phases::phase("command, from its arguments to this table");
    // A build catches SIGINT, SIGTERM and SIGHUP (to stop its tasks and keep what
    // finished); dry runs, questions and the other commands change nothing
    // and end the default way. A build connects to make's jobserver before
    // it opens any file (see `Jobserver::connect`).
    let mut jobserver = None;
    if let Command::Build(args) = &cli.command {
        if !build::read_only(args, &ctx) {
            jobserver = Some(Jobserver::connect(ctx.makeflags()));
            Interrupt::signals();
        }
    }
    if let Command::Watch(_) = &cli.command {
        Interrupt::signals();
    }
    drop(held);
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else {
        Verbosity::Normal
    };
    let mut printer = Printer::new(verbosity, ctx.stderr_colour(), ctx.stderr_live());
    let code = match dispatch(&cli, &ctx, jobserver, &mut printer) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            printer.end();
            // A build says more (`cli/build.rs`): what it keeps, and to
            // build again.
            let e = e.with_no_space_hint(|| {
                "free space on the disk that holds it, then run the command again".into()
            });
            if !e.is_silent() {
                printer.error(&e);
                // A program reading stdout as the JSON it asked for gets
                // the error there, unless data went out before it.
                if error_json::asks_json(&cli.command) && !printer.wrote_data() {
                    let _ = printer.json(&error_json::document(&e));
                }
            }
            e.code()
        }
    };
    drop(whole);
    print_phases();
    code
}

/// `PLANEXE_STATS=1`: where the command's time went, on stderr.
fn print_phases() {
    use std::io::Write;
    let lines = crate::phases::report();
    if !lines.is_empty() {
        let text: String = lines.iter().map(|l| format!("stats: {l}\n")).collect();
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// Runs the command; `jobserver`: make's, as a build connected to it.
fn dispatch(
    cli: &Cli,
    ctx: &Context,
    jobserver: Option<std::result::Result<Option<Jobserver>, String>>,
    printer: &mut Printer,
) -> Result<()> {
    match &cli.command {
        Command::Init(args) => init::init(cli, args, printer),
        Command::New(args) => new::new(cli, ctx, args, printer),
        Command::Build(args) => build::build(cli, ctx, args, jobserver, printer),
        Command::Clean(args) => clean::clean(cli, ctx, args, printer),
        Command::Touch(args) => touch::touch(cli, ctx, args, printer),
        Command::Edit(args) => edit::edit(cli, ctx, args, printer),
        Command::Status(args) => status::status(cli, ctx, args, printer),
        Command::Wait(args) => status::wait(cli, ctx, args, printer),
        Command::Explain(args) => explain::explain(cli, ctx, args, printer),
        Command::Check(args) => check::check(cli, ctx, args, printer),
        Command::Graph(args) => graph::graph(cli, ctx, args, printer),
        Command::Report(args) => report::report(cli, ctx, args, printer),
        Command::Watch(args) => watch::watch(cli, ctx, args, printer),
        Command::Mcp(args) => mcp::mcp(cli, ctx, args),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "planexe", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Opens a session for a command that works on the run as it is: every
/// `foreach` task whose list exists is expanded, and no model is named.
fn open(cli: &Cli, ctx: &Context, printer: &Printer) -> Result<Session> {
    let located = ctx.location(cli)?.locate()?;
    if let Some(warning) = &located.warning {
        printer.warn(warning);
    }
    Session::open(located, &ctx.model(None), Lists::Present)
}

/// Opens a session for a command that changes the run directory (`clean`,
/// `touch`), holding the run directory's lock: taken before the session
/// reads anything, so that it reads what the last holder left; waited for
/// (said once) unless `no_wait`, when another planexe holding it refuses
/// the command at once.
fn open_locked(
    cli: &Cli,
    ctx: &Context,
    printer: &Printer,
    command: &str,
    no_wait: bool,
) -> Result<(Session, Lock)> {
    let location = ctx.location(cli)?;
    let run_dir = RunDir::open(&location.run_dir)?;
    let lock = if no_wait {
        run_dir.lock(command)?
    } else {
        // Ctrl-C ends the wait the default way: nothing is changed yet.
        run_dir.lock_waiting(
            command,
            Waiting {
                told: &mut |who| {
                    printer.note(&format!(
                        "waiting: {who}; {command} goes on when it ends (Ctrl-C stops waiting)"
                    ))
                },
                stop: &|| false,
            },
        )?
    };
    let located = location.locate()?;
    if let Some(warning) = &located.warning {
        printer.warn(warning);
    }
    Ok((
        Session::open(located, &ctx.model(None), Lists::Present)?,
        lock,
    ))
}

/// Puts right what a crashed build left, for `touch` and `clean` holding
/// the lock, before they change anything (as a build would first): a
/// command it left running could write over what they accept or delete,
/// and the next build would put back over that the outputs the command
/// was replacing (after `clean --all`, which forgets the run, it would
/// not even stop it).
fn recover(session: &mut Session, printer: &Printer) -> Result<()> {
    for notice in crate::exec::recovery::recover(session)? {
        notices::say(printer, &notice, session.advice());
    }
    Ok(())
}

/// Waits while another planexe holds the run directory's lock, before a
/// build reads anything, so that what it reads (the certificate, the
/// recorded pipeline file, the pipeline, the state) is what the other
/// left. The lock is taken and let
/// go at once: the build takes it again when it starts (and waits again
/// should a third planexe take it meanwhile). A run directory whose
/// `.planexe/` cannot be written is left to the build to judge.
fn wait_for_lock(run_dir: &RunDir, waiting: Waiting) -> Result<()> {
    if !run_dir.lock_is_held() {
        return Ok(());
    }
    match run_dir.lock_waiting("build", waiting) {
        Ok(_) => Ok(()),
        Err(e) if crate::store::lock::is_unwritable(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens a session for a command that reports on what is stale (`status`,
/// `explain`, `graph`) as a build would see it, judged in
/// `mode`: every `foreach` task whose list is up to date is expanded, one
/// whose list is to be built waits for it (as `build -n` says); no model
/// is named.
fn read(cli: &Cli, ctx: &Context, printer: &Printer, mode: CheckMode) -> Result<Session> {
    let located = ctx.location(cli)?.locate()?;
    if let Some(warning) = &located.warning {
        printer.warn(warning);
    }
    let session = Session::read(located, &ctx.model(None), mode)?;
    if let Some(model) = &session.set_aside_model {
        let models: Vec<&str> = session
            .graph
            .models
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        printer.warn(&format!(
            "this run remembers model `{model}` from an earlier --model, but the pipeline has no [models.{model}] any more: set aside here; a build refuses it until `{} --model NAME` chooses another (models are: {})",
            session.advice().command("build"),
            if models.is_empty() { "none".to_string() } else { models.join(", ") }
        ));
    }
    Ok(session)
}

/// Whether `a` and `b` name the same folder (`-C .`, or the current
/// folder by its full path or through a link).
fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
