//! The man pages are generated from the clap definitions and committed;
//! this test fails when they drift. `UPDATE_MAN=1 cargo test` rewrites them.

use clap::CommandFactory;

fn render(command: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command).render(&mut out).unwrap();
    out
}

#[test]
fn man_pages_match_the_cli() {
    let command = planexe::cli::Cli::command();
    let mut pages = vec![("planexe.1".to_string(), render(command.clone()))];
    for sub in command.get_subcommands() {
        let name = format!("planexe-{}", sub.get_name());
        pages.push((
            format!("{name}.1"),
            render(
                sub.clone()
                    .name(&*Box::leak(name.into_boxed_str()))
                    .version(env!("CARGO_PKG_VERSION")),
            ),
        ));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let update = std::env::var_os("UPDATE_MAN").is_some();
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
    }
}
