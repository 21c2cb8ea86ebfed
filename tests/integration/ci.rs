//! Output for CI systems: `report --format junit` (parsed back with a
//! real XML parser, python3's xml.etree), `build --annotations github`
//! and `$GITHUB_ACTIONS`, the colour decision (`--color`, `NO_COLOR`,
//! `CLICOLOR_FORCE`) on a pipe, a dumb terminal (`TERM`) written to as
//! to a pipe, and a read-only checkout.

use std::process::Stdio;

use serde_json::Value;

use crate::harness::*;

/// Five tasks that end five ways: `fine` done, `ok` done then stale,
/// `bad` failed (its log full of markup and a control character), `down`
/// never built (it needs `bad`), `long` stopped by Ctrl-C.
const FIVE_WAYS: &str = r#"
[pipeline]
name = "ci<&>"
jobs = 4

[tasks.fine]
outputs = ["fine.txt"]
command = "echo fine > fine.txt"

[tasks.ok]
inputs = ["plan.txt"]
outputs = ["ok.txt"]
command = "cat plan.txt > ok.txt"

[tasks.bad]
outputs = ["bad.txt"]
command = "printf 'model said <b>&amp;</b> ]]> \\001\\033[31mred\\n'; exit 3"

[tasks.down]
inputs = ["bad.txt"]
outputs = ["down.txt"]
command = "cp bad.txt down.txt"

[tasks.long]
outputs = ["long.txt"]
command = "touch started; sleep 100"
"#;

/// The JUnit file parsed by xml.etree, as JSON: the suite's attributes and
/// each case's name, classname, time and result.
fn parse_junit(path: &std::path::Path) -> Value {
    let script = r#"
import json, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suite = root.find("testsuite")
cases = []
for c in suite.findall("testcase"):
    case = dict(c.attrib)
    f, s = c.find("failure"), c.find("skipped")
    if f is not None:
        case.update(result="failure", message=f.get("message"), type=f.get("type"), body=f.text)
    elif s is not None:
        case.update(result="skipped", message=s.get("message"))
    else:
        case.update(result="passed")
    cases.append(case)
print(json.dumps({"root": root.tag, "suite": dict(suite.attrib), "cases": cases}))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the JUnit file does not parse: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap_or_default()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn junit_has_one_case_per_task_and_parses_whatever_the_tasks_wrote() {
    let p = Project::new(FIVE_WAYS);
    p.write("plan.txt", "a plan\n");
    let child = p
        .command(&["build", "-k"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("fine, ok and bad to end and long to start", || {
        p.exists(".planexe/tasks/fine.DONE")
            && p.exists(".planexe/tasks/ok.DONE")
            && p.exists("started")
            && std::fs::read_to_string(p.path(".planexe/tasks/bad.status"))
                .is_ok_and(|s| s.contains("\"failed\""))
    });
    // SAFETY: sending a signal to the child we spawned.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    p.write_at("plan.txt", "another plan\n", 2_000_000);

    p.run(&["report", "--format", "junit"])
        .ok()
        .stderr_has("wrote junit.xml");
    let junit = parse_junit(&p.path("junit.xml"));
    assert_eq!(junit["root"], "testsuites");
    let suite = &junit["suite"];
    assert_eq!(suite["name"], "ci<&>");
    assert_eq!(suite["tests"], "5");
    assert_eq!(suite["failures"], "1");
    assert_eq!(suite["skipped"], "3");
    assert_eq!(suite["errors"], "0");
    assert!(suite["timestamp"].as_str().unwrap().starts_with("20"));
    let cases = junit["cases"].as_array().unwrap();
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no case {name}: {junit}"))
    };
    for c in cases {
        assert_eq!(c["classname"], "ci<&>");
        assert!(c["time"].as_str().unwrap().parse::<f64>().is_ok(), "{c}");
    }
    assert_eq!(case("fine")["result"], "passed");

    let bad = case("bad");
    assert_eq!(bad["result"], "failure", "{bad}");
    assert_eq!(bad["message"], "exit: exit status 3");
    let body = bad["body"].as_str().unwrap();
    let status = p.status_json("bad");
    let error_id = status["error"]["error_id"].as_str().unwrap();
    assert!(body.starts_with("exit status 3\n"), "{body}");
    assert!(body.contains(&format!("error_id: {error_id}")), "{body}");
    // The log's markup comes back as it was; the control characters,
    // which XML 1.0 cannot hold, as visible escapes.
    assert!(
        body.contains("model said <b>&amp;</b> ]]> \\x01\\x1b[31mred"),
        "{body}"
    );

    assert_eq!(case("long")["result"], "skipped");
    assert!(
        case("long")["message"]
            .as_str()
            .unwrap()
            .starts_with("stopped"),
        "{junit}"
    );
    assert_eq!(case("down")["result"], "skipped");
    assert_eq!(case("down")["message"], "not run: never built");
    let ok = &case("ok")["message"];
    assert_eq!(case("ok")["result"], "skipped");
    assert!(ok.as_str().unwrap().contains("plan.txt"), "{ok}");

    // -o names the file; the HTML report stays the default.
    std::fs::create_dir_all(p.path("out")).unwrap();
    p.run(&["report", "--format", "junit", "-o", "out/ci.xml"])
        .ok();
    assert_eq!(parse_junit(&p.path("out/ci.xml"))["suite"]["tests"], "5");
    p.run(&["report"]).ok().stderr_has("wrote report.html");
    assert!(p.read("report.html").starts_with("<!DOCTYPE html>"));
}

const FAILS: &str = r#"
[tasks.fine]
outputs = ["fine.txt"]
command = "echo fine > fine.txt"

[tasks.bad]
outputs = ["bad.txt"]
command = "exit 3"
"#;

/// The `::error` line of `bad` in FAILS.
fn bad_annotation(p: &Project) -> String {
    let status = p.status_json("bad");
    let error_id = status["error"]["error_id"].as_str().unwrap();
    format!(
        "::error file=pipeline.toml,line=6,title=planexe%3A bad failed::exit status 3 (error_id {error_id})\n"
    )
}

#[test]
fn annotations_github_points_a_failure_at_its_table() {
    let p = Project::new(FAILS);
    assert_eq!(FAILS.lines().nth(5), Some("[tasks.bad]"));
    let run = p.run(&["build", "--annotations", "github"]);
    run.code(1);
    assert_eq!(run.stdout, bad_annotation(&p));
}

#[test]
fn github_actions_turns_annotations_on_and_none_turns_them_off() {
    let p = Project::new(FAILS);
    let out = p
        .command(&["build"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), bad_annotation(&p));

    let out = p
        .command(&["build", "--annotations", "none"])
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");

    let plain = p.build();
    plain.code(1);
    assert_eq!(plain.stdout, "");
    assert!(!plain.stderr.contains("::error"), "{}", plain.stderr);
}

#[test]
fn annotations_github_points_a_broken_pipeline_at_its_line_and_column() {
    // A key the task table does not have, on line 4, column 1.
    let p = Project::new("[tasks.one]\noutputs = [\"one.txt\"]\ncommand = \"echo\"\nbogus = 3\n");
    for args in [
        &["build", "--annotations", "github"][..],
        &["build", "--question", "--annotations", "github"],
        &["build", "--dry-run", "--annotations", "github"],
    ] {
        let run = p.run(args);
        run.code(2)
            .stderr_has("pipeline.toml:4:1: unknown field `bogus`");
        assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
        assert!(
            run.stdout.starts_with(
                "::error file=pipeline.toml,line=4,col=1,title=planexe%3A pipeline error::\
                 unknown field `bogus`, expected one of"
            ),
            "{}",
            run.stdout
        );
        assert!(
            run.stdout.ends_with(
                "%0Ahint: see docs/pipeline.md for every key a pipeline file may hold\n"
            ),
            "{}",
            run.stdout
        );
    }
    // From another folder (-C), the file is named from there, as
    // GitHub reads it from the workspace.
    let out = std::process::Command::new(bin())
        .args([
            "-C",
            p.root().file_name().unwrap().to_str().unwrap(),
            "build",
        ])
        .current_dir(p.root().parent().unwrap())
        .env("GITHUB_ACTIONS", "true")
        .env_remove("GITHUB_WORKSPACE")
        .env_remove("MAKEFLAGS")
        .env_remove("PLANEXE_PIPELINE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let name = p.root().file_name().unwrap().to_str().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!(
            "::error file={name}/pipeline.toml,line=4,col=1,title=planexe%3A pipeline error::"
        )),
        "{stdout}"
    );
    // An error that points into no file is a line without a place; a
    // task's failure is its own line, not also one for the build.
    let fails = Project::new(FAILS);
    let run = fails.run(&["build", "nope", "--annotations", "github"]);
    run.code(2);
    assert_eq!(
        run.stdout.lines().next().unwrap_or(""),
        "::error title=planexe%3A build error::unknown target `nope`: no task has that name and no task produces that file%0Ahint: tasks are: bad, fine%0Ahint: run `planexe status` to list tasks"
    );
    let run = fails.run(&["build", "--annotations", "github"]);
    run.code(1);
    assert_eq!(run.stdout, bad_annotation(&fails));
    // Without annotations, stdout stays empty.
    let run = p.build();
    run.code(2);
    assert_eq!(run.stdout, "");
}

#[test]
fn annotations_name_the_pipeline_from_the_workspace_when_a_step_runs_in_a_folder() {
    // A step with `working-directory: sub` (or `make -C sub`): GitHub reads
    // `file` from $GITHUB_WORKSPACE, not from the step's folder.
    let p = Project::new("");
    p.write("sub/pipeline.toml", FAILS);
    let sub = p.path("sub");
    let run = |args: &[&str], workspace: Option<&std::path::Path>| {
        let mut command = p.command(args);
        command.current_dir(&sub).env("GITHUB_ACTIONS", "true");
        if let Some(w) = workspace {
            command.env("GITHUB_WORKSPACE", w);
        }
        command.output().unwrap()
    };
    let out = run(&["build"], Some(p.root()));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("::error file=sub/pipeline.toml,line=6,title=planexe%3A bad failed::"),
        "{stdout}"
    );
    // The same from the workspace with -C, and for a refused pipeline.
    let out = p
        .command(&["-C", "sub", "build"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", p.root())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("::error file=sub/pipeline.toml,line=6,")
    );
    p.write("sub/pipeline.toml", &format!("{FAILS}nope = 1\n"));
    let out = run(&["build", "-q"], Some(p.root()));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(
            "::error file=sub/pipeline.toml,line=9,col=1,title=planexe%3A pipeline error::"
        ),
        "{out:?}"
    );
    // Without a workspace (not on GitHub), from the current directory.
    let out = run(&["build", "-q"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("::error file=pipeline.toml,line=9,col=1,"),
        "{out:?}"
    );
}

/// Whether a build's stderr (a pipe) has ANSI escapes, with these
/// arguments and environment.
fn coloured(args: &[&str], env: &[(&str, &str)]) -> bool {
    let p = Project::new(FAILS);
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let mut command = p.command(&all);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad"), "{stderr}");
    stderr.contains('\x1b')
}

#[test]
fn color_flag_beats_no_color_beats_clicolor_force_beats_the_terminal() {
    assert!(!coloured(&[], &[]), "a pipe gets no colour by default");
    assert!(coloured(&["--color", "always"], &[]));
    assert!(coloured(&["--color", "always"], &[("NO_COLOR", "1")]));
    assert!(!coloured(&["--color", "never"], &[("CLICOLOR_FORCE", "1")]));
    assert!(coloured(&[], &[("CLICOLOR_FORCE", "1")]));
    assert!(!coloured(&[], &[("CLICOLOR_FORCE", "0")]));
    assert!(!coloured(
        &[],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    ));
    assert!(coloured(&["--color=auto"], &[("CLICOLOR_FORCE", "1")]));
}

#[test]
fn color_applies_to_stdout_of_every_command() {
    let p = Project::new(FAILS);
    p.build().code(1);
    // `--color` is global: before or after the subcommand.
    let always = p.run(&["--color", "always", "status"]);
    assert!(
        always.stdout.contains("\x1b[1;31mFAILED"),
        "{}",
        always.stdout
    );
    let forced = p
        .command(&["status"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&forced.stdout).contains('\x1b'));
    let never = p.run(&["status", "--color", "never"]);
    assert!(never.stdout.contains("FAILED"), "{}", never.stdout);
    assert!(!never.stdout.contains('\x1b'), "{}", never.stdout);
    p.run(&["status", "--color", "sometimes"])
        .code(2)
        .stderr_has("--color");
}

/// What a build of `pipeline` writes to stderr when stderr is a
/// pseudo-terminal (as under Emacs' `M-x compile` or a CI runner that
/// allocates one), with `TERM` set to `term` (unset for `None`).
fn build_on_a_terminal(pipeline: &str, term: Option<&str>) -> String {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: plain calls on descriptors this test owns; each result is
    // checked before the descriptor is used.
    let (master, slave) = unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let name = libc::ptsname(master);
        assert!(!name.is_null(), "ptsname");
        let slave = libc::open(name, libc::O_RDWR | libc::O_NOCTTY);
        assert!(slave >= 0, "open the pty's slave");
        (
            std::fs::File::from(OwnedFd::from_raw_fd(master)),
            OwnedFd::from_raw_fd(slave),
        )
    };
    let p = Project::new(pipeline);
    let mut command = p.command(&["build"]);
    match term {
        Some(term) => command.env("TERM", term),
        None => command.env_remove("TERM"),
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::from(slave))
        .spawn()
        .unwrap();
    // The slave's only copy is the child's now: reading ends (EIO) once
    // it exits.
    drop(command);
    let mut master = master;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    assert!(child.wait().unwrap().success());
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn a_dumb_terminal_gets_plain_lines_without_colour() {
    let pipeline = "[tasks.a]\noutputs = [\"a.txt\"]\ncommand = \"echo a > a.txt\"\n";
    for term in [Some("dumb"), None] {
        let stderr = build_on_a_terminal(pipeline, term);
        // Every task's start and end, as on a pipe, and no escape code:
        // such a terminal can neither redraw a bar nor show colour.
        assert!(stderr.contains("start  a"), "TERM={term:?}: {stderr:?}");
        assert!(stderr.contains("done   a"), "TERM={term:?}: {stderr:?}");
        assert!(!stderr.contains('\x1b'), "TERM={term:?}: {stderr:?}");
    }
    // A real terminal type keeps its colour.
    let stderr = build_on_a_terminal(pipeline, Some("xterm"));
    assert!(stderr.contains('\x1b'), "{stderr:?}");
}

/// `planexe ARGS` in `p`'s run directory made read-only: a read-only bind
/// mount of it for root (whom file modes do not stop), its mode for anyone
/// else. `None` where root cannot mount (a container without the right).
fn read_only(p: &Project, args: &[&str]) -> Option<Run> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid only reads the process's user id.
    let out = if unsafe { libc::geteuid() } == 0 {
        // `sh -c SCRIPT DIR PLANEXE ARGS...`: mount, then run planexe.
        let script = r#"dir=$1; shift; mount --bind -o ro "$dir" "$dir" || exit 99; exec "$@""#;
        let mut command = std::process::Command::new("unshare");
        command
            .args(["-m", "sh", "-c", script, "sh"])
            .arg(p.root())
            .arg(bin())
            .args(args)
            .current_dir(p.root())
            .stdin(Stdio::null());
        for var in [
            "MAKEFLAGS",
            "PLANEXE_PIPELINE",
            "PLANEXE_MODEL",
            "GITHUB_ACTIONS",
        ] {
            command.env_remove(var);
        }
        let out = command.output().ok()?;
        // unshare itself failed (exit 1, before planexe), or the mount did.
        let theirs = String::from_utf8_lossy(&out.stderr).starts_with("unshare:");
        if out.status.code() == Some(99) || theirs {
            return None;
        }
        out
    } else {
        let mode = |m| std::fs::set_permissions(p.root(), std::fs::Permissions::from_mode(m));
        mode(0o555).unwrap();
        let out = p.command(args).stdin(Stdio::null()).output().unwrap();
        mode(0o755).unwrap();
        out
    };
    Some(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[test]
fn a_read_only_checkout_is_refused_with_what_to_do_and_questions_still_answer() {
    let p = Project::new(FAILS);
    let Some(run) = read_only(&p, &["build"]) else {
        eprintln!("skipped: cannot make a read-only mount here");
        return;
    };
    run.code(2)
        .stderr_has("error: cannot record the state of run directory ")
        .stderr_has("hint: build, clean and touch record what they do in ")
        .stderr_has("status, build -n and build -q only read");
    assert!(!p.exists(".planexe"));
    for args in [&["clean", "--all", "-y"][..], &["touch", "fine"]] {
        read_only(&p, args)
            .unwrap()
            .code(2)
            .stderr_has("hint: build, clean and touch record what they do in ");
    }
    // Reading works as it is.
    read_only(&p, &["build", "-q"]).unwrap().code(1);
    read_only(&p, &["build", "-n"])
        .unwrap()
        .code(0)
        .stdout_has("fine: never built");
    read_only(&p, &["status"]).unwrap().code(0);
}

/// A run directory built, then made read-only (a CI cache, a checkout): a
/// build with nothing to do needs no lock there and succeeds, with targets
/// or without, through the certificate or the full check; one with
/// something to do is refused with what to do, and `-B` always is.
#[test]
fn an_up_to_date_read_only_run_builds_any_target_with_nothing_to_do() {
    let p = Project::new(
        "[tasks.a]\ninputs = [\"in.txt\"]\noutputs = [\"a.txt\"]\ncommand = \"cp in.txt a.txt\"\n\
         [tasks.b]\ninputs = [\"a.txt\"]\noutputs = [\"b.txt\"]\ncommand = \"cp a.txt b.txt\"\n",
    );
    p.write("in.txt", "x\n");
    p.build().ok().ran(&["a", "b"]);
    let Some(run) = read_only(&p, &["build"]) else {
        eprintln!("skipped: cannot make a read-only mount here");
        return;
    };
    run.ok().stderr_has("nothing to do: 2 task(s) up to date");
    read_only(&p, &["build", "a"])
        .unwrap()
        .ok()
        .stderr_has("nothing to do: 1 task(s) up to date");
    read_only(&p, &["build", &p.path("b.txt").display().to_string()])
        .unwrap()
        .ok()
        .stderr_has("nothing to do: 2 task(s) up to date");
    // Without the certificate: the full check.
    p.remove(".planexe/uptodate");
    read_only(&p, &["build"])
        .unwrap()
        .ok()
        .stderr_has("nothing to do: 2 task(s) up to date");
    read_only(&p, &["build", "-B", "a"])
        .unwrap()
        .code(2)
        .stderr_has("error: cannot record the state of run directory ");
    // Something to do: refused, nothing written.
    p.write_at("in.txt", "y\n", 2_000_000);
    let log = std::fs::read(p.path(".planexe/log")).unwrap();
    read_only(&p, &["build", "b"])
        .unwrap()
        .code(2)
        .stderr_has("error: cannot record the state of run directory ")
        .stderr_has("hint: build, clean and touch record what they do in ");
    assert_eq!(std::fs::read(p.path(".planexe/log")).unwrap(), log);
    p.build().ok().ran(&["a", "b"]);
}
