//! Resolution at once on many threads gives what it gives on one.

use super::*;

/// A pipeline of `n` layered command tasks and, among them, every kind of
/// input pass 4 resolves (a glob, a fan-out named as an input, `after`)
/// and every kind of task pass 5 finishes (a prompt, a judge, an instance).
fn pipeline(n: usize, extra: &str) -> String {
    let mut text = String::from(
        "[pipeline]\nmodel = \"m\"\n\n[models.m]\nprovider = \"openai\"\n\
         base_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n\n\
         [tasks.review]\nmatrix = { expert = [\"finance\", \"legal\"] }\n\
         inputs = [\"src/a.txt\"]\noutputs = [\"reviews/{{ expert }}.md\"]\n\
         command = \"echo {{ expert }} > {outputs}\"\n\n",
    );
    for i in 0..n {
        let input = match i {
            0 => "src/a.txt".to_string(),
            _ => format!("out/t{:04}.txt", i - 1),
        };
        text.push_str(&format!(
            "[tasks.t{i:04}]\ninputs = [\"{input}\"]\noutputs = [\"out/t{i:04}.txt\"]\n\
             command = \"cksum {{inputs}} > {{outputs}}\"\n\n"
        ));
        match i % 100 {
            10 => text.push_str(&format!(
                "[tasks.g{i:04}]\ninputs = [\"src/data/*.txt\", \"review\"]\n\
                 outputs = [\"out/g{i:04}.txt\"]\nafter = [\"t{i:04}\"]\n\
                 command = \"cat {{inputs}} > {{outputs}}\"\n\n"
            )),
            20 => text.push_str(&format!(
                "[tasks.p{i:04}]\ninputs = [\"out/t{i:04}.txt\"]\noutputs = [\"out/p{i:04}.md\"]\n\
                 prompt = \"Summarize {{{{ inputs['out/t{i:04}.txt'] }}}}\"\n\n\
                 [tasks.p{i:04}.judge]\nprompt = \"Score {{{{ output }}}}\"\n\n"
            )),
            _ => {}
        }
    }
    text.push_str(extra);
    text
}

fn run_dir() -> (tempfile::TempDir, RunDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src/data")).unwrap();
    std::fs::write(dir.path().join("src/a.txt"), "a\n").unwrap();
    for f in ["x", "y"] {
        std::fs::write(dir.path().join(format!("src/data/{f}.txt")), f).unwrap();
    }
    let run_dir = RunDir::open(dir.path()).unwrap();
    (dir, run_dir)
}

/// The graph (or the refusal) of `text`, resolved on a pool of `threads`.
fn resolved(text: &str, run_dir: &RunDir, threads: usize) -> std::result::Result<String, String> {
    let path = run_dir.root().join("pipeline.toml");
    let pipeline = Pipeline::parse(path, "pipeline.toml".into(), text.to_string()).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| Graph::resolve(&pipeline, run_dir, None, Lists::Unproduced))
        .map(|graph| format!("{graph:#?}"))
        .map_err(|e| e.to_string())
}

#[test]
fn tasks_resolved_at_once_make_the_graph_one_thread_makes() {
    let (_dir, run_dir) = run_dir();
    let text = pipeline(3 * AT_ONCE, "");
    let one = resolved(&text, &run_dir, 1).unwrap();
    assert!(
        one.contains("src/data/x.txt") && one.contains("Prompt("),
        "{one}"
    );
    assert_eq!(resolved(&text, &run_dir, 4).unwrap(), one);
}

#[test]
fn of_two_refusals_the_first_task_in_the_file_is_the_one_given() {
    let (_dir, run_dir) = run_dir();
    let extra =
        "[tasks.z_own]\ninputs = [\"out/z.txt\"]\noutputs = [\"out/z.txt\"]\ncommand = \"true\"\n";
    // A missing source early in the file, a task reading its own output at
    // its end: on any number of threads, the missing source is refused.
    let text = pipeline(3 * AT_ONCE, extra).replacen("src/a.txt", "src/gone.txt", 2);
    for threads in [1, 4] {
        let refused = resolved(&text, &run_dir, threads).unwrap_err();
        assert!(refused.contains("src/gone.txt"), "{threads}: {refused}");
    }
    let text = pipeline(3 * AT_ONCE, extra);
    for threads in [1, 4] {
        let refused = resolved(&text, &run_dir, threads).unwrap_err();
        assert!(
            refused.contains("reads its own output"),
            "{threads}: {refused}"
        );
    }
}

#[test]
fn of_two_refusals_of_actions_and_outputs_the_first_in_the_file_is_the_one_given() {
    let (_dir, run_dir) = run_dir();
    let n = 3 * AT_ONCE;
    let early = "outputs = [\"out/t0003.txt\"]";
    let twice = "[tasks.z_twice]\noutputs = [\"out/t0100.txt\"]\ncommand = \"true\"\n";
    let glob = "[tasks.z_glob]\noutputs = [\"out/*.md\"]\ncommand = \"true\"\n";
    let cases = [
        // A second producer early in the file, a glob output at its end.
        (
            pipeline(n, glob).replacen(
                early,
                "outputs = [\"out/t0003.txt\", \"out/t0001.txt\"]",
                1,
            ),
            "produced by two tasks: `t0001` and `t0003`",
        ),
        // A glob output early, a second producer at the end.
        (
            pipeline(n, twice).replacen(early, "outputs = [\"out/t0003.txt\", \"out/x*.txt\"]", 1),
            "output `out/x*.txt` is a glob pattern",
        ),
        // A second producer early, an empty command at the end.
        (
            pipeline(
                n,
                "[tasks.z_empty]\noutputs = [\"out/e.txt\"]\ncommand = \" \"\n",
            )
            .replacen(early, "outputs = [\"out/t0003.txt\", \"out/t0001.txt\"]", 1),
            "produced by two tasks: `t0001` and `t0003`",
        ),
        // In one task, a second producer before a glob: outputs in order.
        (
            pipeline(n, "").replacen(early, "outputs = [\"out/t0001.txt\", \"out/x*.txt\"]", 1),
            "produced by two tasks: `t0001` and `t0003`",
        ),
    ];
    for (text, says) in cases {
        for threads in [1, 4] {
            let refused = resolved(&text, &run_dir, threads).unwrap_err();
            assert!(refused.contains(says), "{threads}: {refused}");
        }
    }
}
