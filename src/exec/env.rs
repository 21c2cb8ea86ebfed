//! The environment a build runs in: the variables its commands inherit and
//! its model calls read (API keys, by the names the pipeline gives; retry
//! pacing), and the secrets the caller knows of beyond those keys (such as
//! a webhook URL's token), which model answers are scrubbed of. The caller
//! gives it (the CLI: the process's own environment, read once), so
//! nothing below reads the process environment behind its back, and a
//! library user can run builds with an environment of its choosing.

use std::ffi::{OsStr, OsString};

/// Variables, as the process environment holds them, and extra secrets.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Vec<(OsString, OsString)>,
    secrets: Vec<String>,
}

/// The shortest value answers are scrubbed of: shorter ones are
/// placeholders (an API key of `none` or `EMPTY`, a URL path of `/hook`),
/// and scrubbing them would mangle ordinary answers.
pub const MIN_SECRET_LEN: usize = 8;

impl Env {
    pub fn new(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Env {
        Env {
            vars: vars.into_iter().collect(),
            secrets: Vec::new(),
        }
    }

    /// Adds the secret parts of `url` (see [`url_secrets`]): a webhook the
    /// caller pushes events to, so no answer can carry its token.
    pub fn with_url_secrets(mut self, url: &str) -> Env {
        self.secrets.extend(url_secrets(url));
        self
    }

    /// Every variable, in order.
    pub fn vars(&self) -> &[(OsString, OsString)] {
        &self.vars
    }

    /// Secrets beyond the API keys the pipeline names.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// A variable's value, when it is set and valid UTF-8 (the last one
    /// wins, as for a process).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == OsStr::new(name))
            .and_then(|(_, v)| v.to_str())
    }

    /// An API key read from the variable `name`, as it can be sent in a
    /// request's header, or why it cannot: words that end `needs an API
    /// key in $VAR, which ...`, naming neither the key nor any part of it.
    pub fn api_key(&self, name: &str) -> Result<String, String> {
        let Some((_, value)) = self.vars.iter().rev().find(|(k, _)| k == OsStr::new(name)) else {
            return Err("is not set".into());
        };
        let Some(value) = value.to_str() else {
            return Err(
                "holds bytes that are not UTF-8 text, which cannot be sent in an HTTP header"
                    .into(),
            );
        };
        let key = value.trim();
        if key.is_empty() {
            return Err("is empty".into());
        }
        // A header's value is visible ASCII (a space between): a control
        // character or one outside ASCII (a key pasted with a stray byte,
        // a typographic dash) fails every call, as a connection error.
        let unsendable = key
            .chars()
            .position(|c| !(c == ' ' || c.is_ascii_graphic()));
        match unsendable {
            Some(at) => Err(format!(
                "holds a character that cannot be sent in an HTTP header (a control character or one outside ASCII, character {} of {})",
                at + 1,
                key.chars().count()
            )),
            None => Ok(key.to_string()),
        }
    }
}

/// What a build of `graph` scrubs from everything it writes and prints:
/// the [`secrets`] of its models' `api_key_env`s and its webhooks.
pub fn graph_secrets(graph: &crate::model::Graph, env: &Env) -> Vec<String> {
    secrets(
        graph.models.iter().filter_map(|m| m.api_key_env.as_deref()),
        graph
            .hooks
            .iter()
            .filter_map(|h| h.url.as_ref())
            .map(|u| u.get_ref().as_str()),
        env,
    )
}

/// [`graph_secrets`], as the list
/// [`Secrets`](crate::store::untrusted::Secrets) matches.
pub fn secrets_of(graph: &crate::model::Graph, env: &Env) -> crate::store::untrusted::Secrets {
    crate::store::untrusted::Secrets::new(graph_secrets(graph, env), MIN_SECRET_LEN)
}

/// What a build scrubs from everything it writes and prints: the values
/// `env` gives the variables `key_vars` (the pipeline's `api_key_env`s)
/// and every variable whose name says it holds an API key
/// ([`names_api_key`]), `env`'s own secrets, and the secret parts of the webhook `urls`
/// (see [`url_secrets`]); longest first, so a URL goes whole before a
/// token within it.
pub fn secrets<'a>(
    key_vars: impl IntoIterator<Item = &'a str>,
    urls: impl IntoIterator<Item = &'a str>,
    env: &Env,
) -> Vec<String> {
    let mut secrets: Vec<String> = key_vars
        .into_iter()
        .filter_map(|var| env.get(var))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    secrets.extend(env.secrets().iter().cloned());
    // A key no model names is a secret all the same: one the environment
    // holds for another pipeline, or for a command's own tool, which a
    // command may print.
    secrets.extend(
        (env.vars().iter())
            .filter(|(name, _)| name.to_str().is_some_and(names_api_key))
            .filter_map(|(_, value)| value.to_str())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()),
    );
    for url in urls {
        secrets.extend(url_secrets(url));
    }
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
    secrets
}

/// Whether a variable's name says it holds an API key: it ends in
/// `API_KEY` or `APIKEY`, in any case (`OPENAI_API_KEY`,
/// `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`, `MISTRAL_API_KEY`,
/// `OPENROUTER_API_KEY`...). planexe reads no provider's variable by a
/// name of its own (a model's `api_key_env` names it), so the names
/// providers document are what it knows of.
pub fn names_api_key(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    name.ends_with("API_KEY") || name.ends_with("APIKEY")
}

/// What in a URL may be a credential: its path and query together (webhook
/// services put the token there), the user info before the host, and each
/// path segment or query value long enough to be a token on its own. Parts
/// shorter than [`MIN_SECRET_LEN`] are left out.
pub fn url_secrets(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split('#').next().unwrap_or(rest);
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut parts = Vec::new();
    if let Some((user, _host)) = authority.rsplit_once('@') {
        parts.push(user.to_string());
        if let Some((_, password)) = user.split_once(':') {
            parts.push(password.to_string());
        }
    }
    parts.push(tail.to_string());
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    if !query.is_empty() {
        parts.push(format!("?{query}"));
    }
    // A token alone is long; a word such as `webhooks` is not a secret.
    let token = |s: &str| s.len() >= 2 * MIN_SECRET_LEN;
    parts.extend(path.split('/').filter(|s| token(s)).map(str::to_string));
    parts.extend(
        query
            .split('&')
            .map(|kv| kv.split_once('=').map_or(kv, |(_, v)| v))
            .filter(|s| token(s))
            .map(str::to_string),
    );
    parts.retain(|p| p.len() >= MIN_SECRET_LEN);
    parts.sort();
    parts.dedup();
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_no_model_names_is_a_secret_by_its_name() {
        let env = Env::new(
            [
                ("OPENAI_API_KEY", " sk-unnamed-0123 "),
                ("serpapi_apikey", "serp-0123456"),
                ("HOME", "/home/someone"),
                ("KEYBOARD", "a-layout-name"),
            ]
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        let found = secrets(["NAMED"], [], &env);
        assert_eq!(found, ["sk-unnamed-0123", "serp-0123456"]);
    }

    #[test]
    fn url_secrets_are_the_path_query_and_user() {
        let s = url_secrets("https://discord.com/api/webhooks/123/SECRET-TOKEN-0123456789?wait=1");
        assert!(s.contains(&"/api/webhooks/123/SECRET-TOKEN-0123456789?wait=1".to_string()));
        assert!(s.contains(&"SECRET-TOKEN-0123456789".to_string()));
        assert!(!s
            .iter()
            .any(|p| p == "webhooks" || p.contains("discord.com")));
        let s = url_secrets("http://user:hunter2hunter2@host:8080/hook");
        assert!(s.contains(&"hunter2hunter2".to_string()), "{s:?}");
        assert!(url_secrets("http://127.0.0.1:9/").is_empty());
        assert!(url_secrets("http://127.0.0.1:9/hook").is_empty());
        let s = url_secrets("https://h.example/x?token=abcdefabcdefabcdef1");
        assert!(s.contains(&"abcdefabcdefabcdef1".to_string()), "{s:?}");
    }
}
