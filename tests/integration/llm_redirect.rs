//! A model call that the server redirects is not followed (a POST would
//! come back as a GET, or be lost): it fails at once, as `bad_request`,
//! naming the status, the target and the base_url it implies
//! (docs/llm.md, "A server that redirects").

use crate::harness::*;
use crate::llm_server::*;

const TASK: &str = "[tasks.a]\noutputs = [\"a.txt\"]\nprompt = \"Say it\"\n";

fn project(server: &Server) -> Project {
    Project::new(&format!(
        "[pipeline]\nmodel = \"local\"\n\n[models.local]\nprovider = \"openai\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\nstream = false\n\n{TASK}",
        server.url
    ))
}

fn redirect(status: u16, location: Option<&str>) -> Reply {
    let reply = json(status, serde_json::json!({}));
    match location {
        Some(to) => with_header(reply, "location", to),
        None => reply,
    }
}

/// Builds against a server that redirects as `reply`: the build fails at
/// once, saying `said`.
#[track_caller]
fn refused_at_once(reply: Reply, said: &str) -> Project {
    let server = Server::start();
    server.default_reply(reply);
    let p = project(&server);
    let build = p.run_bounded(&["build"]);
    build
        .code(1)
        .stderr_has("bad_request: the server redirected the request (HTTP ")
        .stderr_has(said)
        .stderr_has("fix the model's base_url");
    assert!(!build.stderr.contains("attempts)"), "{}", build.stderr);
    assert!(!build.stderr.contains("not_found"), "{}", build.stderr);
    assert_eq!(server.requests().len(), 1, "not retried, not followed");
    let failures = p.jsonl(".planexe/failures.jsonl");
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0]["error_type"], "bad_request");
    assert_eq!(failures[0]["recoverable"], false);
    p
}

#[test]
fn a_redirect_elsewhere_is_not_followed_and_names_the_base_url_to_use() {
    // Where it points answers, as a real https:// server would: never asked.
    let target = Server::start();
    target.default_reply(openai_answer("followed"));
    let to = format!("{}/api/v1/chat/completions", target.url);
    for status in [301, 302, 303, 307, 308] {
        let p = refused_at_once(
            redirect(status, Some(&to)),
            &format!("HTTP {status} to {to}); planexe does not follow a redirect of a model call: fix the model's base_url (base_url = \"{}/api/v1\")", target.url),
        );
        assert_eq!(p.jsonl(".planexe/failures.jsonl")[0]["http_status"], status);
        assert!(!p.exists("a.txt"));
    }
    assert!(target.requests().is_empty(), "the redirect was followed");
}

#[test]
fn a_redirect_on_the_same_server_or_without_a_location_is_told_as_such() {
    refused_at_once(
        redirect(308, Some("/v2/chat/completions")),
        "HTTP 308 to /v2/chat/completions); planexe does not follow a redirect of a model call: fix the model's base_url (base_url = \"http://127.0.0.1:",
    );
    refused_at_once(redirect(302, None), "HTTP 302, with no Location");
    refused_at_once(
        redirect(302, Some("https://portal.example/login")),
        "HTTP 302 to https://portal.example/login); planexe does not follow a redirect of a model call: fix the model's base_url (error_id",
    );
}
