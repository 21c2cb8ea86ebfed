//! planexe as a library, as watch mode and an MCP server use it: several
//! builds and status queries in one process, no subprocess, with a fake
//! executor in place of commands and model calls.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use planexe::exec::attempt::Turn;
use planexe::exec::observer::{Notice, Observer};
use planexe::exec::{Build, BuildOptions, Ended, Env, Executor, Interrupt};
use planexe::model::{Lists, Task};
use planexe::observe::status::{self, Answer};
use planexe::observe::Standing;
use planexe::plan::session::{Location, ModelChoice};
use planexe::plan::Session;
use planexe::store::{CheckMode, ErrorKind, RunDir, Status, TaskError};

const PIPELINE: &str = r#"
[tasks.outline]
inputs = ["brief.md"]
outputs = ["outline.md"]
command = "never run: the fake executor writes outputs"

[tasks.list]
inputs = ["outline.md"]
outputs = ["items.json"]
command = "never run"

[tasks.section]
foreach = { file = "items.json" }
outputs = ["sections/{{ key }}.md"]
command = "never run: {{ item }}"

[tasks.plan]
inputs = ["section", "outline.md"]
outputs = ["plan.md"]
command = "never run"
"#;

/// Writes every output: the list task a JSON list, the others their name
/// and their inputs' contents. Fails a task whose name is in `fail`.
struct Fake {
    root: PathBuf,
    /// What the list task writes.
    list: Mutex<&'static str>,
    ran: Mutex<Vec<String>>,
    fail: Mutex<Vec<String>>,
}

impl Fake {
    /// Runs tasks in `root`, its list task writing `list`, none failing.
    fn new(root: &Path, list: &'static str) -> Fake {
        Fake {
            root: root.to_path_buf(),
            list: Mutex::new(list),
            ran: Mutex::default(),
            fail: Mutex::default(),
        }
    }

    fn take(&self) -> Vec<String> {
        let mut ran = std::mem::take(&mut *self.ran.lock().unwrap());
        ran.sort();
        ran
    }
}

impl Executor for Fake {
    fn execute(&self, task: &Task, _status: &mut Status, _turn: &Turn) -> Result<(), TaskError> {
        self.ran.lock().unwrap().push(task.name.clone());
        if self.fail.lock().unwrap().contains(&task.name) {
            return Err(TaskError::new(ErrorKind::Exit, "exit status 1"));
        }
        for out in &task.outputs {
            let text = if out.path == "items.json" {
                self.list.lock().unwrap().to_string()
            } else {
                let mut text = format!("{}\n", task.name);
                for input in &task.inputs {
                    text.push_str(&std::fs::read_to_string(self.root.join(&input.path)).unwrap());
                }
                text
            };
            let path = self.root.join(&out.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Ok(())
    }
}

/// Keeps what the build said.
#[derive(Default)]
struct Notes(Mutex<Vec<Notice>>);

impl Observer for Notes {
    fn notice(&self, notice: &Notice) {
        self.0.lock().unwrap().push(notice.clone());
    }
}

/// A session to build in: `foreach` tasks expand when the build knows
/// their list is up to date.
fn open(root: &Path) -> Session {
    session(root, Lists::Unproduced)
}

/// A session to read the run in: every list on disk is expanded.
fn read(root: &Path) -> Session {
    session(root, Lists::Present)
}

fn session(root: &Path, lists: Lists) -> Session {
    let location = Location {
        run_dir: root.to_path_buf(),
        ..Location::default()
    };
    Session::open(location.locate().unwrap(), &ModelChoice::default(), lists).unwrap()
}

fn build(session: &mut Session, fake: &Fake, notes: &Notes) -> Ended {
    let options = BuildOptions {
        jobs: Some(2),
        ..BuildOptions::default()
    };
    build_with(session, fake, notes, &options).ended
}

fn build_with(
    session: &mut Session,
    fake: &Fake,
    notes: &Notes,
    options: &BuildOptions,
) -> planexe::exec::BuildReport {
    Build {
        options,
        env: &Env::default(),
        interrupt: &Interrupt::new(),
        observer: notes,
        executor: Some(fake),
        slots: None,
    }
    .run(session)
    .unwrap()
}

fn standing(session: &Session) -> Vec<(String, Standing)> {
    let answer = status::query(
        session,
        None,
        CheckMode::Content,
        Duration::from_secs(600),
        None,
    )
    .unwrap();
    let Answer::Run(report) = answer else {
        panic!("a run report")
    };
    report
        .tasks
        .into_iter()
        .map(|l| (l.task, l.state))
        .collect()
}

#[test]
fn two_builds_and_a_status_query_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("pipeline.toml"), PIPELINE).unwrap();
    std::fs::write(root.join("brief.md"), "brief\n").unwrap();
    let fake = Fake::new(root, r#"["a", "b"]"#);
    let notes = Notes::default();

    // The first build runs everything, the fan-out's instances as soon as
    // the list is built, inside the same run: the graph grows within the
    // session.
    let mut session = open(root);
    assert_eq!(build(&mut session, &fake, &notes), Ended::Completed);
    assert_eq!(
        fake.take(),
        ["list", "outline", "plan", "section[0]", "section[1]"]
    );
    assert_eq!(
        std::fs::read_to_string(root.join("plan.md")).unwrap(),
        "plan\nsection[0]\nsection[1]\noutline\nbrief\n"
    );
    let said: Vec<String> = notes
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|n| match n {
            Notice::Ran(r) => Some(format!("ran {}", r.succeeded)),
            Notice::Expanded { task, added, .. } => Some(format!("{task} +{added}")),
            _ => None,
        })
        .collect();
    assert_eq!(said, ["section +2", "ran 5"], "one pass, grown once");

    // The same session builds again: nothing to do.
    assert_eq!(build(&mut session, &fake, &notes), Ended::Completed);
    assert!(fake.take().is_empty());

    // The status query, and the build of a fresh session (as watch mode
    // opens after an edit) agree that everything is done.
    let done = standing(&read(root));
    assert_eq!(done.len(), 5);
    assert!(done.iter().all(|(_, s)| *s == Standing::Done), "{done:?}");
    let mut session = open(root);
    assert_eq!(build(&mut session, &fake, &notes), Ended::Completed);
    assert!(fake.take().is_empty());

    // An edited source re-runs exactly what reads it, and a failure is
    // data in the report and the status.
    std::fs::write(root.join("brief.md"), "brief, edited\n").unwrap();
    fake.fail.lock().unwrap().push("list".into());
    let ended = build(&mut session, &fake, &notes);
    assert!(
        matches!(&ended, Ended::Failed { names, .. } if names == &["list".to_string()]),
        "{ended:?}"
    );
    assert_eq!(fake.take(), ["list", "outline"]);
    let after = standing(&read(root));
    assert!(
        after.contains(&("list".to_string(), Standing::Failed)),
        "{after:?}"
    );
    assert!(
        after.contains(&("outline".to_string(), Standing::Done)),
        "{after:?}"
    );

    // Fixed, the same session resumes: the list and what depends on it.
    fake.fail.lock().unwrap().clear();
    assert_eq!(build(&mut session, &fake, &notes), Ended::Completed);
    assert_eq!(fake.take(), ["list", "plan"]);
    assert!(standing(&read(root))
        .iter()
        .all(|(_, s)| *s == Standing::Done));

    // The list changes under the same session: the instance whose item
    // changed runs again, the other keeps its result.
    *fake.list.lock().unwrap() = r#"["a", "c"]"#;
    std::fs::write(root.join("brief.md"), "brief, edited again\n").unwrap();
    assert_eq!(build(&mut session, &fake, &notes), Ended::Completed);
    assert_eq!(fake.take(), ["list", "outline", "plan", "section[1]"]);

    // It shrinks: the instance whose item is gone goes, with its output.
    *fake.list.lock().unwrap() = r#"["a"]"#;
    std::fs::write(root.join("brief.md"), "brief, shorter\n").unwrap();
    notes.0.lock().unwrap().clear();
    assert_eq!(build(&mut session, &fake, &notes), Ended::Completed);
    assert_eq!(fake.take(), ["list", "outline", "plan"]);
    assert!(!root.join("sections/1.md").exists());
    assert!(notes.0.lock().unwrap().contains(&Notice::InstanceRemoved {
        task: "section[1]".into(),
        outputs: vec!["sections/1.md".into()],
    }));
    assert_eq!(
        std::fs::read_to_string(root.join("plan.md")).unwrap(),
        "plan\nsection[0]\noutline\nbrief, shorter\n"
    );
    let last = standing(&read(root));
    assert_eq!(last.len(), 4, "{last:?}");
    assert!(last.iter().all(|(_, s)| *s == Standing::Done), "{last:?}");
}

/// A build's lock lives in the open lock file, which a process forked by
/// another thread of the same program shares until it execs: the lock a
/// build let go of stays held that long. The next build of the same
/// process waits for that moment, rather than refusing as if another
/// build ran.
#[test]
fn a_build_waits_for_a_process_forked_meanwhile_to_let_go_of_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("pipeline.toml"), PIPELINE).unwrap();
    std::fs::write(root.join("brief.md"), "brief\n").unwrap();
    let fake = Fake::new(root, r#"["a"]"#);
    let run_dir = RunDir::open(root).unwrap();
    let lock = run_dir.lock("build").unwrap();
    // Forked now (holding a copy of the lock's descriptor), it execs a
    // second later.
    let forked = std::thread::spawn(|| {
        let mut command = std::process::Command::new("true");
        // SAFETY: the child only sleeps (nanosleep) before it execs.
        unsafe {
            command.pre_exec(|| {
                std::thread::sleep(Duration::from_secs(1));
                Ok(())
            });
        }
        command.status().unwrap()
    });
    std::thread::sleep(Duration::from_millis(200));
    drop(lock);
    assert!(run_dir.lock_is_held(), "the forked process holds the lock");
    let mut session = open(root);
    assert_eq!(
        build(&mut session, &fake, &Notes::default()),
        Ended::Completed
    );
    assert!(forked.join().unwrap().success());
    // A lock this process holds is still refused at once.
    let _held = run_dir.lock("build").unwrap();
    let busy = run_dir.lock("build").unwrap_err().to_string();
    assert!(busy.contains("is running in this directory"), "{busy}");
}

/// Two tasks that read nothing of each other's.
const TWO: &str = r#"
[tasks.a]
inputs = ["a.txt"]
outputs = ["a.out"]
command = "never run"

[tasks.b]
inputs = ["b.txt"]
outputs = ["b.out"]
command = "never run"
"#;

#[test]
fn a_build_the_certificate_judged_checks_every_task_when_another_changed_the_state_first() {
    use planexe::exec::build::{certified, Certified};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("pipeline.toml"), TWO).unwrap();
    std::fs::write(root.join("a.txt"), "a\n").unwrap();
    std::fs::write(root.join("b.txt"), "b\n").unwrap();
    let fake = Fake::new(root, "[]");
    let notes = Notes::default();
    assert_eq!(build(&mut open(root), &fake, &notes), Ended::Completed);
    assert_eq!(fake.take(), ["a", "b"]);

    // An edit of a.txt, judged by the certificate: only `a` is reached.
    std::fs::write(root.join("a.txt"), "a, edited\n").unwrap();
    let location = Location {
        run_dir: root.to_path_buf(),
        ..Location::default()
    };
    let mut options = BuildOptions {
        jobs: Some(2),
        ..BuildOptions::default()
    };
    let Certified::Changed { changes, mark } =
        certified(&location.locate().unwrap(), None, &options).unwrap()
    else {
        panic!("only a task file changed: the certificate says what")
    };
    options.changed = Some(changes);
    let mut judged = Session::open_certified(
        location.locate().unwrap(),
        &ModelChoice::default(),
        Lists::Unproduced,
        mark,
    )
    .unwrap();

    // Before that build takes the lock, another one runs both tasks after
    // an edit of b.txt, and `b` fails.
    std::fs::write(root.join("b.txt"), "b, edited\n").unwrap();
    fake.fail.lock().unwrap().push("b".into());
    assert!(matches!(
        build(&mut open(root), &fake, &notes),
        Ended::Failed { .. }
    ));
    assert_eq!(fake.take(), ["a", "b"]);
    fake.fail.lock().unwrap().clear();

    // The judged build sees the state changed since its judgement: it
    // checks every task, not only what a.txt reaches, and runs `b` again.
    let report = build_with(&mut judged, &fake, &notes, &options);
    assert_eq!(report.ended, Ended::Completed);
    assert_eq!(fake.take(), ["b"]);
}

/// A build records its end while the run directory is still its own: by
/// the time it lets go of the lock (`Build::run` returns), its last event
/// is in `events.jsonl` and its trace is written whole, so a build that
/// waited for the lock writes after them. (Recorded once the lock was let
/// go, a build that took it meanwhile wrote its `pipeline.started`, and
/// more, before the first one's `pipeline.failed`.)
#[test]
fn a_build_records_its_end_before_it_lets_go_of_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("pipeline.toml"), PIPELINE).unwrap();
    std::fs::write(root.join("brief.md"), "brief\n").unwrap();
    let fake = Fake::new(root, r#"["a"]"#);
    fake.fail.lock().unwrap().push("plan".into());
    let mut session = open(root);
    let recorder = planexe::observe::Recorder::start(&session.run_dir, &session.graph.hooks, None);
    let report = Build {
        options: &BuildOptions::default(),
        env: &Env::default(),
        interrupt: &Interrupt::new(),
        observer: &recorder,
        executor: Some(&fake),
        slots: None,
    }
    .run(&mut session);
    assert!(!session.run_dir.lock_is_held(), "a next build may start");
    let events = std::fs::read_to_string(root.join(".planexe/events.jsonl")).unwrap();
    let last = events.lines().last().unwrap();
    assert!(last.contains(r#""event":"pipeline.failed""#), "{events}");
    let trace = std::fs::read_to_string(root.join(".planexe/trace.json")).unwrap();
    assert!(trace.contains(r#""name":"plan""#), "{trace}");
    // Nothing more is written then: the hooks are told, if any.
    recorder
        .finish(&session, report.as_ref(), &Interrupt::new())
        .unwrap();
    let after = std::fs::read_to_string(root.join(".planexe/events.jsonl")).unwrap();
    assert_eq!(after, events);
    assert!(matches!(report.unwrap().ended, Ended::Failed { .. }));
}
