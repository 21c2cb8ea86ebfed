//! The command line, as clap derive structs. The man page and shell
//! completions are generated from these definitions (see
//! tests/integration/man.rs).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::store::CheckMode;

/// How a changed file is detected (`--check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CheckArg {
    /// Size and mtime first; the content hash decides when they differ.
    #[default]
    Content,
    /// Any change of size or mtime is a change (plain make semantics).
    Mtime,
}

impl From<CheckArg> for CheckMode {
    fn from(arg: CheckArg) -> CheckMode {
        match arg {
            CheckArg::Content => CheckMode::Content,
            CheckArg::Mtime => CheckMode::Mtime,
        }
    }
}

/// When text gets colour (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorArg {
    /// On a terminal; $NO_COLOR (not empty) turns it off, $CLICOLOR_FORCE
    /// (not empty, not 0) turns it on off a terminal
    #[default]
    Auto,
    /// Always, even into a pipe or a file
    Always,
    /// Never
    Never,
}

/// Which CI annotations a build prints (`--annotations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AnnotationsArg {
    /// GitHub Actions `::error` lines on stdout
    Github,
    /// None, even under GitHub Actions
    None,
}

/// In whose words a build says what to do (`--advice`, hidden: passed by
/// `planexe mcp` to the builds it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AdviceArg {
    /// The command line's: `planexe build`, `--model`, `-f FILE`
    #[default]
    Cli,
    /// The MCP server's tools and their arguments
    Mcp,
}

/// What `planexe report` writes (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportFormat {
    /// A self-contained HTML page for people
    #[default]
    Html,
    /// JUnit XML, one test case per task, for CI test reports
    Junit,
}

/// A make-style build tool for LLM pipelines.
///
/// planexe reads pipeline.toml, compares what is on disk with what it
/// recorded under .planexe/, and runs only the tasks that are stale, in
/// parallel. Each task's state is kept beside the work in
/// .planexe/tasks/NAME.status and NAME.DONE.
#[derive(Debug, Parser)]
#[command(name = "planexe", version, max_term_width = 100)]
pub struct Cli {
    /// Run in DIR instead of the current directory
    #[arg(short = 'C', long = "directory", value_name = "DIR", global = true)]
    pub directory: Option<PathBuf>,

    /// Use this pipeline file (default: the one this run directory used
    /// last, else $PLANEXE_PIPELINE, else ./pipeline.toml)
    #[arg(short = 'f', long = "file", value_name = "FILE", global = true)]
    pub file: Option<PathBuf>,

    /// Print no progress or notes: only failed tasks, warnings and errors
    /// (stdout is unchanged)
    #[arg(long, global = true)]
    pub quiet: bool,

    /// When to colour output: auto (on a terminal, unless $NO_COLOR is set
    /// or $CLICOLOR_FORCE forces it), always or never
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorArg::Auto, global = true)]
    pub color: ColorArg,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a small pipeline that builds as it stands: pipeline.toml, a
    /// prompt, a schema and an example plan.txt
    Init(InitArgs),
    /// Start a run of a pipeline in a fresh run directory seeded with
    /// plan.txt
    ///
    /// The pipeline is -f FILE, else $PLANEXE_PIPELINE, else ./pipeline.toml.
    /// It must load as a build would load it, and is recorded in
    /// RUN_DIR/.planexe/pipeline, so `planexe build -C RUN_DIR` uses it.
    New(NewArgs),
    /// Run the stale tasks needed for the targets (default: all tasks)
    Build(BuildArgs),
    /// Delete what tasks produced: outputs and state files
    Clean(CleanArgs),
    /// Accept tasks' current outputs as done without running them
    ///
    /// The outputs are checked first, as a build checks what a task wrote:
    /// min_bytes, a prompt task's format and schema, and its `check`
    /// command (a judge is not asked: it costs model calls). An output a
    /// check refuses, or a check that cannot run, refuses the whole touch
    /// (exit 2) and nothing is recorded; a failed check of severity warn is
    /// a warning. --no-check accepts the outputs as they are. A stale task
    /// upstream of a touched one is a warning: the next build runs it, then
    /// the touched task again if its outputs change (touch it with
    /// --downstream to keep them).
    Touch(TouchArgs),
    /// Edit a source file (default: the plan) in $VISUAL or $EDITOR, then
    /// show what the edit makes stale and rebuild it
    ///
    /// FILE is a source of the pipeline (an input no task produces, or a
    /// foreach list file no task writes) or the pipeline file. Nothing is built when the file did not change. On a
    /// terminal planexe asks before rebuilding; without one, -y is needed.
    Edit(EditArgs),
    /// Show each task's state: done, stale (why), failed, running, never built
    Status(StatusArgs),
    /// Wait until the build running in this directory ends, then print the
    /// status (exit 0 completed, 1 failed, 130 stopped, 124 timed out, 2
    /// none ever ran)
    Wait(WaitArgs),
    /// Say why a task is or is not stale: stamps, definition, upstream
    Explain(ExplainArgs),
    /// Run tasks' output checks again on their current outputs (exit 1 when
    /// one fails); changes nothing
    ///
    /// One line per task on stdout: `ok TASK`, `warn TASK: message` (a
    /// failed check of severity warn) or `FAILED TASK: message`.
    Check(CheckArgs),
    /// Print the task graph, each task coloured by its state
    Graph(GraphArgs),
    /// Write a self-contained HTML report of the run (or JUnit XML with
    /// --format junit)
    Report(ReportArgs),
    /// Build, then rebuild what became stale whenever a source, the
    /// pipeline, a prompt or schema, or an output edited by hand changes
    Watch(WatchArgs),
    /// Serve the Model Context Protocol on stdin and stdout, for agents:
    /// create runs, build, wait, read status and outputs, stop, clean,
    /// explain, archive
    ///
    /// Runs are folders directly under --root, addressed by name. Builds
    /// run in the background as `planexe build` processes of their own and
    /// go on when the server exits. Register it in an MCP client with the
    /// command `planexe` and the arguments `mcp --root DIR`; see
    /// docs/mcp.md. -f FILE names the pipeline new runs use by default
    /// (else $PLANEXE_PIPELINE, else DIR/pipeline.toml).
    Mcp(McpArgs),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Default, Args)]
pub struct BuildArgs {
    /// Task names or output paths to build, with what they need (paths as
    /// in the pipeline, or absolute ones inside the run directory)
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Run at most N tasks at once (256 at the most) [default: [pipeline].jobs, else CPUs]
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,

    /// Keep going after a failure with everything that does not depend on it
    #[arg(short = 'k', long)]
    pub keep_going: bool,

    /// Print each task that would run and why; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Run nothing; exit 0 if everything is up to date, 1 otherwise
    #[arg(short = 'q', long, conflicts_with = "dry_run")]
    pub question: bool,

    /// Rebuild the targets even if they are up to date
    #[arg(short = 'B', long)]
    pub force: bool,

    /// How a changed file is detected
    #[arg(long, value_enum, default_value_t = CheckArg::Content, value_name = "MODE")]
    pub check: CheckArg,

    /// Ask this model (a [models.NAME] table) for every prompt task of this
    /// build [env: PLANEXE_MODEL]
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,

    #[command(flatten)]
    pub answers: AnswersArgs,

    /// When another planexe works in the run directory, fail at once
    /// (exit 2) instead of waiting for it to end
    #[arg(long)]
    pub no_wait: bool,

    /// Also print each failed task as a CI annotation on stdout, pointing
    /// at its line in the pipeline file, and an error that ends the build
    /// (a pipeline file refused: at its line and column) [default: github
    /// when $GITHUB_ACTIONS is true, else none]
    #[arg(long, value_enum, value_name = "KIND")]
    pub annotations: Option<AnnotationsArg>,

    /// Say what to do in the MCP server's terms (its tools and their
    /// arguments) rather than the command line's: for the builds
    /// `planexe mcp` starts, whose log its clients read
    #[arg(long, value_enum, default_value_t = AdviceArg::Cli, hide = true)]
    pub advice: AdviceArg,
}

/// Where model answers come from: `--record`, `--replay` or `--cache`.
#[derive(Debug, Default, Args)]
pub struct AnswersArgs {
    /// Ask the models and store every accepted answer in DIR
    #[arg(long, value_name = "DIR", conflicts_with_all = ["replay", "cache"])]
    pub record: Option<PathBuf>,

    /// Answer only from answers recorded in DIR; call no model
    #[arg(long, value_name = "DIR", conflicts_with = "cache")]
    pub replay: Option<PathBuf>,

    /// Answer from DIR when it holds the answer, else ask the model and
    /// store its answer there [default: [pipeline].cache]
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Task names or output paths to build, with what they need (paths as
    /// in the pipeline, or absolute ones inside the run directory)
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,

    /// Run at most N tasks at once (256 at the most) [default: [pipeline].jobs, else CPUs]
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,

    /// Keep going after a failure with everything that does not depend on it
    #[arg(short = 'k', long)]
    pub keep_going: bool,

    /// How a changed file is detected
    #[arg(long, value_enum, default_value_t = CheckArg::Content, value_name = "MODE")]
    pub check: CheckArg,

    /// Ask this model (a [models.NAME] table) for every prompt task
    /// [env: PLANEXE_MODEL]
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,

    /// Collect changes for this long after the last one before building
    /// (with --poll, at least one and a half poll intervals)
    #[arg(long, value_name = "DURATION", default_value = "100ms")]
    pub debounce: String,

    /// Look for changes every DURATION (10ms or more) instead of asking
    /// the system to report them (for network and other file systems
    /// without change notification)
    #[arg(long, value_name = "DURATION")]
    pub poll: Option<String>,

    /// Clear the terminal before each rebuild
    #[arg(long)]
    pub clear: bool,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "planexe clean [OPTIONS] <TASK>...\n       planexe clean [OPTIONS] --all"
)]
pub struct CleanArgs {
    /// Tasks whose outputs and state to delete: names, instances
    /// (`wbs3[7]`), fan-out tasks, or output paths (the task that writes it)
    #[arg(value_name = "TASK", required_unless_present = "all")]
    pub tasks: Vec<String>,

    /// Also clean every task that depends on them, transitively
    #[arg(long)]
    pub downstream: bool,

    /// Clean every task
    #[arg(long, conflicts_with = "tasks")]
    pub all: bool,

    /// List the files that would be deleted; delete nothing (as `build -n`
    /// runs nothing)
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// With --dry-run: end each path with a NUL byte rather than a newline,
    /// for `xargs -0` (as `find -print0`); refused without --dry-run
    #[arg(short = '0', long)]
    pub print0: bool,

    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// When another planexe works in the run directory, fail at once
    /// (exit 2) instead of waiting for it to end
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct TouchArgs {
    /// Tasks to mark as done: names, instances, fan-out tasks, or output
    /// paths (the task that writes it)
    #[arg(value_name = "TASK", required = true)]
    pub tasks: Vec<String>,

    /// Also touch every task that depends on them, transitively (as `make
    /// -t` touches every target out of date): after a hand edit, nothing
    /// downstream runs again
    #[arg(long)]
    pub downstream: bool,

    /// Accept the outputs as they are, without running their checks
    /// (min_bytes, a prompt task's format and schema, the `check` command)
    #[arg(long)]
    pub no_check: bool,

    /// When another planexe works in the run directory, fail at once
    /// (exit 2) instead of waiting for it to end
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Tasks whose checks to run, or their output paths [default: every
    /// done task with a check, a judge, a min_bytes or a JSON answer]
    #[arg(value_name = "TASK")]
    pub tasks: Vec<String>,

    /// Judge with this model wherever a judge asks the task's model (a
    /// [models.NAME] table) [env: PLANEXE_MODEL]
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,

    #[command(flatten)]
    pub answers: AnswersArgs,
}

#[derive(Debug, Args)]
pub struct EditArgs {
    /// The file to edit [default: plan.txt if a task reads it, else the
    /// first source input]
    // Its own id: `file` is the global -f's, which clap would fill too.
    #[arg(id = "edit_file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Accept these tasks' current outputs as done (as `planexe touch`
    /// does) before rebuilding, so they are not run again
    #[arg(long, value_name = "TASK", num_args = 1..)]
    pub keep: Vec<String>,

    /// With --keep: accept the kept tasks' outputs without running their
    /// checks (as `planexe touch --no-check` does)
    #[arg(long, requires = "keep")]
    pub no_check: bool,

    /// Rebuild without asking
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Give up after this long ("90s", "10m", "1h"), with exit status 124
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The task (or fan-out instance) to explain, or an output path of it
    #[arg(value_name = "TASK")]
    pub task: String,

    /// How a changed file is detected
    #[arg(long, value_enum, default_value_t = CheckArg::Content, value_name = "MODE")]
    pub check: CheckArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Output format (with json, an error is one JSON object on stdout
    /// too, as with `status --json`)
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Where to write it; `-` for stdout [default: report.html, or
    /// junit.xml with --format junit]
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// What to write: the HTML page, or JUnit XML for a CI system's test
    /// report
    #[arg(long, value_enum, default_value_t = ReportFormat::Html, value_name = "FORMAT")]
    pub format: ReportFormat,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show only this task (or the task that writes this output path); a
    /// fan-out task is shown instance by instance
    #[arg(value_name = "TASK")]
    pub task: Option<String>,

    /// Print JSON (one object, see docs/observability.md); an error is
    /// one JSON object on stdout too, `{"error": {...}}`, besides the text
    /// on stderr
    #[arg(long)]
    pub json: bool,

    /// Call a running build stalled after this long without progress
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub stall_after: String,

    /// How a changed file is detected
    #[arg(long, value_enum, default_value_t = CheckArg::Content, value_name = "MODE")]
    pub check: CheckArg,

    /// Check every task and its files, as `build -n` does, rather than
    /// answer from the status snapshot (which trusts task outputs)
    #[arg(long)]
    pub full: bool,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// The folder runs live in (each run a folder in it) [default: the
    /// current directory]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the files (made if missing) [default: -C DIR, else
    /// the current directory]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The run directory to make (with its parents); it must not exist or
    /// be empty
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,

    #[command(flatten)]
    pub plan: PlanSource,

    /// Source files the pipeline reads besides plan.txt (inputs no task
    /// writes), copied with their permission bits into RUN_DIR at the same
    /// relative paths: `--input
    /// notes/budget.md data/*.csv` makes RUN_DIR/notes/budget.md and the
    /// CSV files in RUN_DIR/data/. Repeatable
    #[arg(long = "input", value_name = "PATH", num_args = 1..)]
    pub inputs: Vec<PathBuf>,
}

/// Where a new run's plan.txt comes from: exactly one of the two.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PlanSource {
    /// The plan, as text (written to RUN_DIR/plan.txt with a trailing newline)
    #[arg(long, value_name = "TEXT")]
    pub plan: Option<String>,

    /// A text file to copy to RUN_DIR/plan.txt
    #[arg(long, value_name = "FILE")]
    pub plan_file: Option<PathBuf>,
}

/// A hint for an option clap refused because it came before the command
/// (`planexe -q build`, `planexe -j4 build`): it is the command's, so the
/// hint is the same line with the option moved after the command. `None`
/// for any other refusal.
pub fn misplaced_option_hint(args: &[std::ffi::OsString], e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(invalid)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let words: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let cli = <Cli as clap::CommandFactory>::command();
    let command = words
        .iter()
        .position(|w| cli.get_subcommands().any(|c| c.get_name() == w))?;
    // Only an option that command has.
    let sub = cli.find_subcommand(&words[command])?;
    let has = sub
        .get_arguments()
        .any(|a| match invalid.strip_prefix("--") {
            Some(long) => a.get_long() == Some(long),
            None => invalid
                .strip_prefix('-')
                .and_then(|s| s.chars().next())
                .is_some_and(|c| a.get_short() == Some(c)),
        });
    if !has {
        return None;
    }
    // `-j4` is refused as `-j`; `--jobs=4` as `--jobs`.
    let at = words[..command]
        .iter()
        .position(|w| w == invalid || (w.starts_with(invalid.as_str()) && !w.starts_with("--")))
        .or_else(|| {
            words[..command]
                .iter()
                .position(|w| w.starts_with(&format!("{invalid}=")))
        })?;
    // The option's value, if it was given apart (`-j 4 build`).
    let end = if at + 1 < command && !words[at + 1].starts_with('-') {
        at + 2
    } else {
        at + 1
    };
    let mut line: Vec<&str> = Vec::new();
    line.extend(words[..at].iter().map(String::as_str));
    line.extend(words[end..=command].iter().map(String::as_str));
    line.extend(words[at..end].iter().map(String::as_str));
    line.extend(words[command + 1..].iter().map(String::as_str));
    Some(format!(
        "`{invalid}` is an option of `planexe {}`: put it after the command, as in `planexe {}`",
        words[command],
        line.join(" ")
    ))
}
