//! The folders of recorded answers a command line names: `--record`,
//! `--replay` or `--cache DIR` (relative to the current directory), and
//! the response cache `[pipeline] cache` names (relative to the pipeline
//! file's folder). A folder a build stores answers in is made before
//! anything runs, whichever spelling named it: one that cannot be made is
//! refused with exit 2, not a warning per answer after the calls were
//! paid for.

use std::path::Path;

use super::args::AnswersArgs;
use crate::error::{Error, Result};
use crate::exec::llm::recording::Answers;
use crate::plan::Session;
use crate::store::wrong_kind;

/// `--record`, `--replay` or `--cache` (clap lets through one at most),
/// relative to the current directory.
pub(super) fn answers(args: &AnswersArgs) -> Result<Answers> {
    let flag = [&args.record, &args.replay, &args.cache]
        .into_iter()
        .find_map(Option::as_ref);
    let Some(dir) = flag else {
        return Ok(Answers::Live);
    };
    let dir = std::env::current_dir()
        .map_err(|e| Error::io_at(std::path::Path::new("."), e))?
        .join(dir);
    Ok(if args.record.is_some() {
        Answers::Record(dir)
    } else if args.replay.is_some() {
        Answers::Replay(dir)
    } else {
        Answers::Cache(dir)
    })
}

/// Makes the folder `--record` or `--cache` stores answers in, before
/// anything runs: one that cannot be made is a usage error (exit 2), not
/// a warning per answer after the build paid for them.
pub(super) fn make_answer_store(answers: &Answers) -> Result<()> {
    let (flag, dir) = match answers {
        Answers::Record(dir) => ("--record", dir),
        Answers::Cache(dir) => ("--cache", dir),
        Answers::Live | Answers::Replay(_) => return Ok(()),
    };
    make_answers_folder(dir, dir).map_err(|why| {
        Error::usage(format!(
            "{flag} {}: cannot make the folder of recorded answers: {why}",
            dir.display()
        ))
        .hint(format!(
            "pass {flag} a folder planexe can write, such as {flag} answers"
        ))
    })
}

/// Makes the folder of the response cache `[pipeline] cache` names, when
/// no flag replaces it (`answers` is live), as [`make_answer_store`] makes
/// a flag's, before anything runs: one that cannot be made is a pipeline
/// error pointing at the key (exit 2).
pub(super) fn make_pipeline_cache(session: &Session, answers: &Answers) -> Result<()> {
    let key = &session.pipeline.def.pipeline.cache;
    let (Answers::Live, Some(dir), Some(key)) = (answers, &session.graph.cache, key) else {
        return Ok(());
    };
    make_answers_folder(dir, Path::new(key.get_ref())).map_err(|why| {
        let message = format!(
            "cache = \"{}\": cannot make the folder of cached answers ({}): {why}",
            key.get_ref(),
            dir.display()
        );
        Error::pipeline(session.pipeline.source().diagnostic(key.span(), &message)).hint(
            "name a folder planexe can write (relative to the pipeline file's folder), such as cache = \"answers\", or remove the key",
        )
    })
}

/// Makes the folder `dir` of recorded answers (spelled `shown` in the
/// message); why it cannot be, if so.
fn make_answers_folder(dir: &Path, shown: &Path) -> std::result::Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| wrong_kind::why(dir, shown, &e))
}
