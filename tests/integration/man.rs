//! The man pages are generated from the clap definitions and committed;
//! this test fails when they drift. `UPDATE_MAN=1 cargo test` rewrites them.
//! The completion scripts are generated at run time (`planexe completions`);
//! a test here checks they offer every option `--help` lists.

use clap::CommandFactory;

use crate::harness::*;

fn render(command: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command).render(&mut out).unwrap();
    out
}

/// The CLI as the binary parses it: built, so that each subcommand holds
/// the global options (`-C`, `-f`, `--quiet`, `--color`) it accepts.
fn built_cli() -> clap::Command {
    let mut command = planexe::cli::Cli::command();
    command.build();
    command
}

/// Every long option of `command`, as `--name`.
fn long_options(command: &clap::Command) -> Vec<String> {
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|l| format!("--{l}"))
        .collect()
}

#[test]
fn man_pages_match_the_cli() {
    let command = built_cli();
    let mut pages = vec![("planexe.1".to_string(), render(command.clone()))];
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("planexe-{}", sub.get_name());
        // The page names the version, but a subcommand takes no
        // `--version`: the page must not offer one.
        pages.push((
            format!("{name}.1"),
            render(
                sub.clone()
                    .name(&*Box::leak(name.into_boxed_str()))
                    .version(env!("CARGO_PKG_VERSION"))
                    .disable_version_flag(true),
            ),
        ));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("UPDATE_MAN").is_some();
    let mut expected: Vec<String> = Vec::new();
    for (file, rendered) in pages {
        let path = dir.join(&file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &rendered).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == rendered,
            "man/{file} is out of date; run `UPDATE_MAN=1 cargo test man_pages`"
        );
        expected.push(file);
    }
    // No page of a subcommand that is gone.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            expected.contains(&file),
            "man/{file} documents no command of planexe; remove it"
        );
    }
}

/// Each subcommand's page lists the global options it accepts, and no
/// `--version`, which it refuses.
#[test]
fn subcommand_man_pages_list_the_options_the_subcommand_takes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let page = std::fs::read_to_string(dir.join("planexe-build.1"))
        .unwrap()
        .replace("\\-", "-");
    for option in ["--directory", "--file", "--quiet", "--color", "--jobs"] {
        assert!(page.contains(option), "planexe-build.1 lacks {option}");
    }
    assert!(
        !page.contains("--version"),
        "planexe-build.1 offers --version"
    );
    Project::new("[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo o > o\"\n")
        .run(&["build", "--version"])
        .code(2);
}

/// Every long option of every subcommand is offered by the completion
/// scripts of bash, zsh and fish.
#[test]
fn completions_offer_every_option() {
    let p = Project::new("[tasks.a]\noutputs = [\"o\"]\ncommand = \"echo o > o\"\n");
    let command = built_cli();
    for shell in ["bash", "zsh", "fish"] {
        let script = p.run(&["completions", shell]).ok().stdout.clone();
        for sub in command.get_subcommands() {
            for option in long_options(sub) {
                let bare = option.trim_start_matches('-');
                let offered = match shell {
                    "fish" => script.contains(&format!("-l {bare}")),
                    _ => script.contains(&option),
                };
                assert!(
                    offered,
                    "{shell} completions lack {option} of {}",
                    sub.get_name()
                );
            }
        }
    }
}
