//! Where the Redis ledger keeps things: one hash tag per scope and per request.

use crate::budget::{Scope, ScopeKind};

/// The prefix of every key of `scope`: `{PREFIX:key:NAME}` or `{PREFIX:team:NAME}`.
///
/// The braces make the whole prefix the key's hash tag, so all of one scope's keys live
/// in one slot. Braces and `%` in a name are escaped so a name cannot end the tag.
pub(super) fn scope_prefix(prefix: &str, scope: &Scope) -> String {
    let kind = match scope.kind {
        ScopeKind::Key => "key",
        ScopeKind::Team => "team",
    };
    format!("{{{prefix}:{kind}:{}}}", escape(&scope.name))
}

/// The hash of one admitted request: `{PREFIX:req:ID}`.
pub(super) fn request_key(prefix: &str, request_id: &str) -> String {
    format!("{{{prefix}:req:{}}}", escape(request_id))
}

fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_cannot_leave_its_hash_tag() {
        assert_eq!(scope_prefix("lg", &Scope::key("ci")), "{lg:key:ci}");
        assert_eq!(
            scope_prefix("lg", &Scope::team("a}b{%")),
            "{lg:team:a%7Db%7B%25}"
        );
        assert_eq!(request_key("lg", "r-1"), "{lg:req:r-1}");
    }
}
