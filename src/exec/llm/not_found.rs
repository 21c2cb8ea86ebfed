//! What a failed call of a model the server does not know says (a 404, or
//! an answer reporting `not_found`): the names the server lists at
//! `GET /models`, or why the fault is likelier the endpoint's.

use super::call;
use super::provider;
use super::Llm;
use crate::model::models::ModelConfig;
use crate::store::untrusted::printable;

impl Llm<'_> {
    /// What a 404 (or an answer reporting `not_found`, with its `status`)
    /// says about the model: its name, and the names the server lists when
    /// it answers `/models`. A server that lists the model knows it: then
    /// the endpoint is the likelier fault (a 404), or the model is there
    /// but not served (an error the answer reports).
    pub(super) fn not_found(&self, model: &ModelConfig, m: usize, status: Option<u16>) -> String {
        let listed = call::list_models(
            &self.agent,
            &model.base_url,
            &provider::headers(model, self.keys[m].as_deref()),
        );
        let listed: Vec<String> = listed
            .iter()
            .map(|n| printable(&self.scrub(n)).into_owned())
            .collect();
        let base = model.base_url.trim_end_matches('/');
        if listed.contains(&model.model) {
            let why = match status {
                Some(404) => format!(
                    "but {} answered HTTP 404: the base_url's path, or the provider (\"{}\"), is the likelier fault",
                    provider::endpoint(model),
                    model.provider.as_str()
                ),
                _ => "but its answer says it was not found: it may not be loaded, or be served under another name".to_string(),
            };
            return format!(
                "; the server at {} lists the model `{}` (GET {base}/models), {why}",
                model.base_url, model.model
            );
        }
        let more = if !listed.is_empty() {
            format!("; it lists: {}", listed.join(", "))
        } else if !base.ends_with("/v1") {
            // Nothing listed either: more likely no API at that path
            // (Ollama's and LM Studio's are under /v1) than no model.
            format!(", or has no API there: OpenAI-compatible and Anthropic APIs answer under /v1 (base_url = \"{base}/v1\")")
        } else {
            String::new()
        };
        format!(
            "; the server at {} does not know the model `{}`{more}",
            model.base_url, model.model
        )
    }
}
