//! The client's session id, for attribution: from a header, or from the body's
//! `metadata.user_id` the way Claude Code writes it.
//!
//! Sources, first found wins: the gateway's own [`SESSION_HEADER`], Claude Code's
//! [`CLAUDE_CODE_SESSION_HEADER`], then `metadata.user_id` — either a JSON object held in
//! that string (`{"device_id":…,"session_id":"…"}`, current Claude Code) or the older
//! `user_<hash>_account_<uuid>_session_<uuid>` form. A value that is empty, longer than
//! [`MAX_SESSION_BYTES`] or not printable text is ignored, and the next source is tried;
//! nothing here ever fails a request.

use crate::meta::MAX_SESSION_BYTES;
use http::HeaderMap;

/// The gateway's own session header; removed before the request goes upstream.
pub const SESSION_HEADER: &str = "x-gateway-session";

/// The session header Claude Code sends (forwarded as it came).
pub const CLAUDE_CODE_SESSION_HEADER: &str = "x-claude-code-session-id";

/// Largest `metadata` value parsed for a session; a bigger one is not looked into.
const MAX_METADATA_BYTES: usize = 64 * 1024;

/// The session named by the request's headers, if one of them holds a valid one.
pub(crate) fn from_headers(headers: &HeaderMap) -> Option<String> {
    [SESSION_HEADER, CLAUDE_CODE_SESSION_HEADER]
        .into_iter()
        .flat_map(|name| headers.get_all(name))
        .find_map(|value| valid(std::str::from_utf8(value.as_bytes()).ok()?))
}

/// The session inside a body's `metadata` value (its raw JSON bytes), if it holds one.
pub(crate) fn from_metadata(metadata: &[u8]) -> Option<String> {
    if metadata.len() > MAX_METADATA_BYTES || metadata.first() != Some(&b'{') {
        return None;
    }
    let serde_json::Value::Object(members) = serde_json::from_slice(metadata).ok()? else {
        return None;
    };
    from_user_id(members.get("user_id")?.as_str()?)
}

/// The session inside a `user_id` string: a JSON object's `session_id`, or the uuid
/// after `_session_`.
fn from_user_id(user_id: &str) -> Option<String> {
    let trimmed = user_id.trim();
    if trimmed.starts_with('{') {
        let serde_json::Value::Object(members) = serde_json::from_str(trimmed).ok()? else {
            return None;
        };
        return valid(members.get("session_id")?.as_str()?);
    }
    let (_, uuid) = user_id.rsplit_once("_session_")?;
    let is_uuid = !uuid.is_empty() && uuid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    is_uuid.then(|| valid(uuid)).flatten()
}

/// `value`, trimmed, when it is 1 to [`MAX_SESSION_BYTES`] bytes of printable text.
fn valid(value: &str) -> Option<String> {
    let value = value.trim();
    let printable = !value.chars().any(char::is_control);
    (!value.is_empty() && value.len() <= MAX_SESSION_BYTES && printable).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn the_gateway_header_comes_before_claude_codes() {
        let both = headers(&[
            (CLAUDE_CODE_SESSION_HEADER, b"cc-1"),
            (SESSION_HEADER, b"gw-1"),
        ]);
        assert_eq!(from_headers(&both).as_deref(), Some("gw-1"));
        let cc = headers(&[(CLAUDE_CODE_SESSION_HEADER, b" cc-1 ")]);
        assert_eq!(from_headers(&cc).as_deref(), Some("cc-1"));
        assert_eq!(from_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn bad_header_values_are_skipped_for_the_next_source() {
        let long = "s".repeat(MAX_SESSION_BYTES + 1);
        let exact = "s".repeat(MAX_SESSION_BYTES);
        for bad in [long.as_bytes(), b"", b"   ", b"\xff\xfe", b"a\tb"] {
            let map = headers(&[(SESSION_HEADER, bad), (CLAUDE_CODE_SESSION_HEADER, b"cc")]);
            assert_eq!(from_headers(&map).as_deref(), Some("cc"), "{bad:?}");
        }
        let map = headers(&[(SESSION_HEADER, exact.as_bytes())]);
        assert_eq!(from_headers(&map), Some(exact));
        let map = headers(&[(SESSION_HEADER, "séance".as_bytes())]);
        assert_eq!(from_headers(&map).as_deref(), Some("séance"));
    }

    #[test]
    fn claude_code_metadata_json_user_id() {
        let metadata = br#"{"user_id":"{\"device_id\":\"d1\",\"account_uuid\":\"\",\"session_id\":\"4f1c-aa\"}"}"#;
        assert_eq!(from_metadata(metadata).as_deref(), Some("4f1c-aa"));
    }

    #[test]
    fn older_user_id_form() {
        let metadata = br#"{"user_id":"user_9f2e_account_11111111-2222-3333-4444-555555555555_session_0b7e2a6c-1d3f-4c1e-9a55-7d2f3e4b5c6d"}"#;
        assert_eq!(
            from_metadata(metadata).as_deref(),
            Some("0b7e2a6c-1d3f-4c1e-9a55-7d2f3e4b5c6d")
        );
    }

    #[test]
    fn malformed_or_foreign_metadata_gives_no_session() {
        let long = format!(
            r#"{{"user_id":"{{\"session_id\":\"{}\"}}"}}"#,
            "x".repeat(MAX_SESSION_BYTES + 1)
        );
        for metadata in [
            &br#"{"user_id":"plain-user"}"#[..],
            br#"{"user_id":"{not json"}"#,
            br#"{"user_id":"{\"session_id\":7}"}"#,
            br#"{"user_id":"[\"session_id\"]"}"#,
            br#"{"user_id":"user_x_session_"}"#,
            br#"{"user_id":"user_x_session_not a uuid!"}"#,
            br#"{"user_id":{"session_id":"s"}}"#,
            br#"{"other":"x"}"#,
            b"\"a string\"",
            b"null",
            b"[1]",
            long.as_bytes(),
        ] {
            assert_eq!(
                from_metadata(metadata),
                None,
                "{}",
                String::from_utf8_lossy(metadata)
            );
        }
    }
}
