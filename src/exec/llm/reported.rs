//! Errors a server reports in what it sends rather than in its status: an
//! answer of HTTP 200 that holds an `error` instead of an answer (LM
//! Studio, OpenRouter, proxies), a stream's error event. Their kind comes
//! from the error's HTTP-like `code`, else its `type`.

use serde_json::Value;

use super::fault::CallError;
use super::provider;
use crate::model::models::Provider;
use crate::store::ErrorKind;

/// The kind of an error a server reported in what it sent (an answer of
/// HTTP 200 holding `error`, a stream's error event): by its HTTP-like
/// `code` when it has one (OpenRouter's), else by its `type` as OpenAI's
/// and Anthropic's APIs name them (a type of another name is the
/// server's own failure); neither: a wrong answer.
pub(super) fn reported_kind(kind: Option<&str>, code: Option<u64>, message: &str) -> ErrorKind {
    if provider::is_context_overflow(message) || kind.is_some_and(provider::is_context_overflow) {
        return ErrorKind::ContextOverflow;
    }
    match (code, kind) {
        (Some(408), _) => ErrorKind::Timeout,
        (Some(429), _) => ErrorKind::RateLimited,
        (Some(401 | 403), _) => ErrorKind::Auth,
        (Some(404), _) => ErrorKind::NotFound,
        (Some(500..=599), _) => ErrorKind::ServerError,
        (Some(400..=499), _) => ErrorKind::BadRequest,
        (_, Some("rate_limit_error" | "rate_limit_exceeded")) => ErrorKind::RateLimited,
        (_, Some("authentication_error" | "permission_error" | "invalid_api_key")) => {
            ErrorKind::Auth
        }
        (_, Some("not_found_error" | "not_found" | "model_not_found")) => ErrorKind::NotFound,
        (_, Some("invalid_request_error")) => ErrorKind::BadRequest,
        (_, Some(_)) => ErrorKind::ServerError,
        (_, None) => ErrorKind::BadResponse,
    }
}

/// An answer of HTTP `status` (a success) that holds no answer but an
/// `error` (LM Studio, OpenRouter and proxies answer some failures so):
/// the failure it reports, in the server's words, classified as
/// [`reported_kind`] says; `None` for an answer.
pub(super) fn error_in_answer(
    provider: Provider,
    status: u16,
    value: &Value,
    text: &str,
) -> Option<CallError> {
    let answered = match provider {
        Provider::OpenAi => value.get("choices"),
        Provider::Anthropic => value.get("content"),
    };
    let error = value.get("error").filter(|e| !e.is_null())?;
    if answered.is_some_and(|a| !a.is_null()) {
        return None;
    }
    let (kind_name, message) = provider::error_details_of(value, text);
    let code = error
        .get("code")
        .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()));
    let kind = reported_kind(kind_name.as_deref(), code, &message);
    let mut said = format!("HTTP {status} with an error");
    if let Some(k) = &kind_name {
        said.push_str(&format!(" {k}"));
    }
    if let Some(code) = code {
        said.push_str(&format!(" (code {code})"));
    }
    if !message.is_empty() {
        said.push_str(&format!(": {}", provider::truncate(&message, 300)));
    }
    Some(CallError {
        status: Some(status),
        raw: provider::truncate(text, 2048).to_string(),
        ..CallError::new(kind, said)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_errors_by_code_then_type() {
        let kind = |t: Option<&str>, code: Option<u64>| reported_kind(t, code, "boom");
        // A code that is an HTTP status wins over the type.
        assert_eq!(kind(Some("api_error"), Some(429)), ErrorKind::RateLimited);
        assert_eq!(kind(None, Some(502)), ErrorKind::ServerError);
        assert_eq!(kind(None, Some(422)), ErrorKind::BadRequest);
        assert_eq!(kind(Some("not_found_error"), None), ErrorKind::NotFound);
        assert_eq!(kind(Some("invalid_api_key"), None), ErrorKind::Auth);
        assert_eq!(kind(Some("overloaded_error"), None), ErrorKind::ServerError);
        assert_eq!(kind(None, None), ErrorKind::BadResponse);
        assert_eq!(
            reported_kind(
                None,
                Some(400),
                "This model's maximum context length is 8192 tokens"
            ),
            ErrorKind::ContextOverflow
        );
    }
}
