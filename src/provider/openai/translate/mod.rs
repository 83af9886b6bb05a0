//! Translation between the Anthropic Messages API (spoken to clients) and OpenAI-compatible
//! chat completions (spoken by OpenAI, Azure OpenAI, DeepSeek and Ollama upstreams).
//!
//! Everything here is pure: bytes in, bytes out, no I/O, no clocks, no randomness. Bad input
//! yields an error value, never a panic.
//!
//! | job | entry point |
//! |---|---|
//! | Anthropic request → OpenAI request | [`translate_request`] ([`translate_request_with_options`]) |
//! | OpenAI `chat.completion` → Anthropic `Message` | [`translate_response`] ([`translate_response_with_id`]) |
//! | OpenAI/Azure error body → Anthropic error body | [`translate_error`] |
//! | OpenAI chunk stream → Anthropic SSE frames | [`StreamTranslator`] |
//! | local `count_tokens` estimate | [`estimate_input_tokens`] ([`estimate_count_tokens_body`]) |
//! | OpenAI request → Anthropic request (OpenAI clients) | [`messages_from_chat`] |
//! | Anthropic `Message` → OpenAI `chat.completion` | [`chat_completion_from_message`] |
//! | Anthropic SSE events → OpenAI chunks | [`ChunkWriter`] |
//! | Anthropic error body → OpenAI error body | [`chat_error_from_anthropic`] ([`openai_error_body`]) |
//! | a models list both SDKs parse | [`models_for_both_sdks`] |
//!
//! Lossy points (documented where they happen): thinking signatures, `cache_control`, server
//! tools, `top_k`, `output_config` and other Anthropic-only fields are dropped on the way out;
//! OpenAI does not report which stop sequence matched, so `stop_sequence` is always `null`.
//!
//! Paths inside this module are relative (`super::…`) so the directory can be moved as a whole.

#![warn(missing_docs)]

mod chat_error;
mod chat_messages;
mod chat_request;
mod chat_response;
mod chat_stream;
mod error;
mod error_body;
mod estimate;
mod json;
mod messages;
mod models;
mod request;
mod response;
mod sse;
mod stream;
mod tools;
mod usage;

#[cfg(test)]
mod tests;

pub use chat_error::{chat_error_from_anthropic, openai_error_body, openai_error_type};
pub use chat_request::{
    messages_from_chat, thinking_budget_for_effort, ChatTranslation, DEFAULT_MAX_TOKENS,
};
pub use chat_response::chat_completion_from_message;
pub use chat_stream::ChunkWriter;
pub use error::{StreamError, TranslateError};
pub use error_body::{anthropic_error_body, anthropic_error_type_for_status, translate_error};
pub use estimate::{estimate_count_tokens_body, estimate_input_tokens};
pub use models::models_for_both_sdks;
pub use request::{translate_request, translate_request_with_options, RequestOptions};
pub use response::{translate_response, translate_response_with_id};
pub use stream::{StreamEnd, StreamTranslator};
pub use tools::{openai_tool_name, MAX_TOOL_NAME_LEN};
pub use usage::{finish_reason_from_stop, stop_reason_from_finish, Usage};

/// Which OpenAI-compatible dialect the target speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// api.openai.com (and generic OpenAI-compatible servers).
    OpenAi,
    /// Azure OpenAI (legacy deployment URLs or the v1 API).
    Azure,
    /// DeepSeek's OpenAI-format API (`reasoning_content`, `prompt_cache_hit_tokens`).
    DeepSeek,
    /// Ollama's `/v1/chat/completions` compatibility endpoint (`reasoning`, whole tool calls).
    Ollama,
}

/// What the request is translated for.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Model (or Azure deployment) name written into the upstream request.
    pub model: &'a str,
    /// Dialect of the upstream.
    pub dialect: Dialect,
}
