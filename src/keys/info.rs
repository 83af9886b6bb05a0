//! What the gateway knows about a client key and a team: [`KeyInfo`], [`TeamInfo`], and
//! the request extension [`Authenticated`].

use crate::budget::{Limits, Scope};
use std::sync::Arc;
use std::time::SystemTime;

/// Where a key was defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// In the config file's `[auth] client_keys`: read-only through the API.
    Config,
    /// Created through `POST /gateway/keys`, kept in the key store.
    Api,
}

impl KeySource {
    /// `config` or `api`, as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Config => "config",
            KeySource::Api => "api",
        }
    }
}

/// One client key, without its value (the gateway keeps only its SHA-256 digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The name audit, metrics and the API show instead of the key.
    pub name: Arc<str>,
    /// The team the key belongs to, if any.
    pub team: Option<Arc<str>>,
    /// The key's own limits.
    pub limits: Limits,
    /// Globs on the requested model; `None` allows every model.
    pub models: Option<Vec<String>>,
    /// When the key stops working, if ever.
    pub expires_at: Option<SystemTime>,
    /// When the key was revoked, if it was (it is then refused).
    pub revoked_at: Option<SystemTime>,
    /// Config file or API.
    pub source: KeySource,
    /// When the key was created (for a config key: when this gateway loaded it).
    pub created_at: SystemTime,
}

impl KeyInfo {
    /// The scope the key's own spend and limits are counted in.
    pub fn scope(&self) -> Scope {
        Scope::key(&self.name)
    }

    /// Whether the key's `models` globs let `model` through.
    pub fn allows_model(&self, model: &str) -> bool {
        globs_allow(self.models.as_deref(), model)
    }

    /// Whether the key works at `now` (neither revoked nor expired).
    pub fn is_usable_at(&self, now: SystemTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }
}

/// A team: limits shared by every key naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamInfo {
    /// The team's name.
    pub name: Arc<str>,
    /// The team's limits (none for a team only named by keys).
    pub limits: Limits,
    /// Globs on the requested model; `None` allows every model.
    pub models: Option<Vec<String>>,
}

impl TeamInfo {
    /// A team with no limits and every model allowed (one that keys name but the
    /// config does not define).
    pub fn unlimited(name: &str) -> Self {
        Self {
            name: Arc::from(name),
            limits: Limits::default(),
            models: None,
        }
    }

    /// The scope the team's spend and limits are counted in.
    pub fn scope(&self) -> Scope {
        Scope::team(&self.name)
    }

    /// Whether the team's `models` globs let `model` through.
    pub fn allows_model(&self, model: &str) -> bool {
        globs_allow(self.models.as_deref(), model)
    }
}

/// The request extension auth inserts for a request whose key was accepted: the key as
/// it was at that moment, and its team.
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The key that authenticated the request.
    pub key: Arc<KeyInfo>,
    /// Its team, when it names one.
    pub team: Option<Arc<TeamInfo>>,
}

impl Authenticated {
    /// Whether both the key and its team allow `model`.
    pub fn allows_model(&self, model: &str) -> bool {
        self.key.allows_model(model) && self.team.as_ref().is_none_or(|t| t.allows_model(model))
    }

    /// Every scope the request counts in with its limits: the key, then its team.
    pub fn scopes(&self) -> Vec<(Scope, Limits)> {
        let mut scopes = vec![(self.key.scope(), self.key.limits)];
        if let Some(team) = &self.team {
            scopes.push((team.scope(), team.limits));
        }
        scopes
    }
}

/// Whether `model` matches one of `globs` (`None`: every model does). A glob that does
/// not compile matches nothing (globs are checked when they are set).
pub(crate) fn globs_allow(globs: Option<&[String]>, model: &str) -> bool {
    globs.is_none_or(|globs| {
        globs
            .iter()
            .any(|glob| glob::Pattern::new(glob).is_ok_and(|pattern| pattern.matches(model)))
    })
}

/// Check that each of `globs` compiles; the error names the first that does not, as
/// `FIELD[i]`.
pub fn check_globs(field: &str, globs: &[String]) -> Result<(), (String, String)> {
    for (i, glob) in globs.iter().enumerate() {
        if let Err(error) = glob::Pattern::new(glob) {
            return Err((
                format!("{field}[{i}]"),
                format!("{glob:?} is not a glob: {error}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_globs_and_team_both_apply() {
        let key = KeyInfo {
            name: "ci".into(),
            team: Some("platform".into()),
            limits: Limits::default(),
            models: Some(vec!["claude-*".into(), "gpt-4o".into()]),
            expires_at: None,
            revoked_at: None,
            source: KeySource::Config,
            created_at: SystemTime::UNIX_EPOCH,
        };
        assert!(key.allows_model("claude-sonnet-4-5"));
        assert!(key.allows_model("gpt-4o"));
        assert!(!key.allows_model("gpt-4o-mini"));
        let team = TeamInfo {
            models: Some(vec!["claude-haiku-*".into()]),
            ..TeamInfo::unlimited("platform")
        };
        let auth = Authenticated {
            key: Arc::new(key),
            team: Some(Arc::new(team)),
        };
        assert!(auth.allows_model("claude-haiku-4-5"));
        assert!(!auth.allows_model("claude-sonnet-4-5"));
        assert_eq!(auth.scopes().len(), 2);
        assert!(check_globs("models", &["[".into()]).unwrap_err().0 == "models[0]");
    }
}
