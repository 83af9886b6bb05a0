//! The translators' error types.

use std::fmt;

use serde_json::Value;

/// A translation failure: the input could not be understood.
///
/// The `Display` text is written for the client (it ends up in a 400 `invalid_request_error`
/// or an `api_error`); it names the offending field but never contains credentials or whole
/// request bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateError {
    message: String,
}

impl TranslateError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The client-facing message (same as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TranslateError {}

/// Why [`StreamTranslator::push_data`](super::StreamTranslator::push_data) refused a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The upstream sent an in-band error object (`{"error": …}`) inside the stream.
    Upstream {
        /// Anthropic-shaped error body `{"type":"error","error":{"type":…,"message":…}}`,
        /// ready for an `event: error` frame or a non-streaming error response.
        error_json: Vec<u8>,
    },
    /// The chunk was not a JSON object (the message says why; it never echoes the payload).
    Malformed(String),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Upstream { error_json } => {
                let message = serde_json::from_slice::<Value>(error_json)
                    .ok()
                    .and_then(|v| {
                        v.get("error")
                            .and_then(|e| e.get("message"))
                            .and_then(Value::as_str)
                            .filter(|m| !m.is_empty())
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| String::from_utf8_lossy(error_json).into_owned());
                write!(f, "upstream stream error: {message}")
            }
            StreamError::Malformed(why) => write!(f, "malformed upstream stream: {why}"),
        }
    }
}

impl std::error::Error for StreamError {}
