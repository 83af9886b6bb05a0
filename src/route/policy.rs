use super::{Attempt, RouteDecision, RoutePolicy};
use crate::config::{Config, ConfigError, ProviderKind};
use crate::error::{Error, ErrorKind};
use crate::meta::{Endpoint, RequestMeta};

/// Routing as the configuration says: `agent_type` rule, model globs, default provider.
#[derive(Debug)]
pub struct ConfigRoutePolicy {
    default_provider: String,
    fallback_chain: Vec<String>,
    agent_types: Vec<(String, String, Option<String>)>,
    models: Vec<(glob::Pattern, String, Option<String>)>,
    /// Each provider's own model, used when a request falls back to it.
    fallback_models: Vec<(String, Option<String>)>,
    /// Where the rest of the Anthropic API goes: the default provider when it is
    /// Anthropic-kind, else the first Anthropic-kind provider by name.
    passthrough_provider: Option<String>,
}

impl ConfigRoutePolicy {
    /// The policy for `config`; a bad glob is an error naming its key.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let default_provider = config
            .default_provider()
            .ok_or_else(|| {
                ConfigError::at("routing.default_provider", "no provider is configured")
            })?
            .to_owned();
        let mut models = Vec::new();
        for (i, rule) in config.routing.models.iter().enumerate() {
            let pattern = glob::Pattern::new(&rule.pattern).map_err(|e| {
                ConfigError::at(
                    &format!("routing.models[{i}].match"),
                    format!("bad glob: {e}"),
                )
            })?;
            models.push((pattern, rule.provider.clone(), rule.model.clone()));
        }
        let fallback_models = config
            .providers
            .iter()
            .map(|(name, provider)| {
                // Anthropic-kind providers without a model keep the client's model.
                let model = match provider.kind {
                    ProviderKind::AzureOpenai => {
                        provider.model.clone().or(provider.deployment.clone())
                    }
                    _ => provider.model.clone(),
                };
                (name.clone(), model)
            })
            .collect();
        let anthropic_kind = |name: &str| {
            config
                .providers
                .get(name)
                .is_some_and(|p| p.kind == ProviderKind::Anthropic)
        };
        let passthrough_provider = if anthropic_kind(&default_provider) {
            Some(default_provider.clone())
        } else {
            config
                .providers
                .iter()
                .find(|(_, p)| p.kind == ProviderKind::Anthropic)
                .map(|(name, _)| name.clone())
        };
        Ok(Self {
            passthrough_provider,
            default_provider,
            fallback_chain: config.routing.fallback_chain.clone(),
            agent_types: config
                .routing
                .agent_types
                .iter()
                .map(|(agent, target)| {
                    (agent.clone(), target.provider.clone(), target.model.clone())
                })
                .collect(),
            models,
            fallback_models,
        })
    }

    fn provider_model(&self, provider: &str) -> Option<String> {
        self.fallback_models
            .iter()
            .find(|(name, _)| name == provider)
            .and_then(|(_, model)| model.clone())
    }
}

impl RoutePolicy for ConfigRoutePolicy {
    fn route(&self, meta: &RequestMeta) -> Result<RouteDecision, Error> {
        if meta.endpoint == Endpoint::Passthrough {
            // One attempt, no fallback: these APIs are not interchangeable between providers.
            let provider = self.passthrough_provider.as_deref().ok_or_else(|| {
                Error::new(
                    ErrorKind::NoRoute,
                    "no Anthropic-kind provider is configured for this API",
                )
            })?;
            return Ok(RouteDecision {
                attempts: vec![Attempt::new(provider, None)],
            });
        }
        let requested = meta.model.as_deref().unwrap_or_default();
        let by_agent = meta.agent_type.as_deref().and_then(|agent| {
            self.agent_types
                .iter()
                .find(|(name, _, _)| name == agent)
                .map(|(_, provider, model)| (provider.as_str(), model.clone()))
        });
        let by_model = || {
            self.models
                .iter()
                .find(|(pattern, _, _)| pattern.matches(requested))
                .map(|(_, provider, model)| (provider.as_str(), model.clone()))
        };
        let (primary, model) = by_agent
            .or_else(by_model)
            .unwrap_or((self.default_provider.as_str(), None));
        if primary.is_empty() {
            return Err(Error::new(
                ErrorKind::NoRoute,
                "no provider can serve this request",
            ));
        }
        let mut attempts = vec![Attempt {
            provider: primary.into(),
            // A rule without a model sends the client's; a routed-away provider gets its own.
            model: model.or_else(|| {
                (primary != self.default_provider)
                    .then(|| self.provider_model(primary))
                    .flatten()
            }),
            cross_provider: primary != self.default_provider,
        }];
        for name in &self.fallback_chain {
            if attempts.iter().any(|a| &*a.provider == name) {
                continue;
            }
            attempts.push(Attempt {
                provider: name.as_str().into(),
                model: self.provider_model(name),
                cross_provider: true,
            });
        }
        Ok(RouteDecision { attempts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Endpoint;

    fn meta(model: &str, agent: Option<&str>) -> RequestMeta {
        RequestMeta {
            model: Some(model.into()),
            stream: true,
            agent_type: agent.map(str::to_owned),
            ..RequestMeta::new("r", Endpoint::Messages)
        }
    }

    const CONFIG: &str = r#"
[routing]
default_provider = "anthropic"
fallback_chain = ["anthropic", "azure", "deepseek", "ollama"]
[routing.agent_types]
"code-reviewer" = { provider = "deepseek", model = "deepseek-flash" }
[[routing.models]]
match = "claude-haiku-*"
provider = "ollama"
model = "llama3.1"
[providers.anthropic]
kind = "anthropic"
base_url = "https://api.anthropic.com"
[providers.azure]
kind = "azure-openai"
base_url = "https://r.openai.azure.com"
deployment = "gpt-4o"
[providers.deepseek]
kind = "openai"
base_url = "https://api.deepseek.com"
model = "deepseek-v4-pro"
[providers.ollama]
kind = "openai"
base_url = "http://127.0.0.1:11434"
model = "qwen3"
"#;

    fn names(decision: &RouteDecision) -> Vec<(String, Option<String>)> {
        decision
            .attempts
            .iter()
            .map(|a| (a.provider.to_string(), a.model.clone()))
            .collect()
    }

    #[test]
    fn default_then_chain_with_each_providers_model() {
        let policy =
            ConfigRoutePolicy::from_config(&Config::from_toml_str(CONFIG).unwrap()).unwrap();
        let decision = policy.route(&meta("claude-sonnet-4-5", None)).unwrap();
        assert_eq!(
            names(&decision),
            [
                ("anthropic".into(), None),
                ("azure".into(), Some("gpt-4o".into())),
                ("deepseek".into(), Some("deepseek-v4-pro".into())),
                ("ollama".into(), Some("qwen3".into())),
            ]
        );
        assert!(!decision.attempts[0].cross_provider);
        assert!(decision.attempts[1].cross_provider);
    }

    #[test]
    fn agent_type_wins_over_model_rules() {
        let policy =
            ConfigRoutePolicy::from_config(&Config::from_toml_str(CONFIG).unwrap()).unwrap();
        let decision = policy
            .route(&meta("claude-haiku-4-5", Some("code-reviewer")))
            .unwrap();
        assert_eq!(
            names(&decision)[0],
            ("deepseek".into(), Some("deepseek-flash".into()))
        );
        assert_eq!(
            decision.attempts.len(),
            4,
            "the chain follows, without repeating deepseek"
        );
        let decision = policy.route(&meta("claude-haiku-4-5", None)).unwrap();
        assert_eq!(
            names(&decision)[0],
            ("ollama".into(), Some("llama3.1".into()))
        );
        let decision = policy
            .route(&meta("claude-haiku-4-5", Some("unknown-agent")))
            .unwrap();
        assert_eq!(names(&decision)[0].0, "ollama");
    }

    #[test]
    fn a_bad_glob_is_named() {
        let text =
            format!("{CONFIG}\n[[routing.models]]\nmatch = \"[oops\"\nprovider = \"ollama\"\n");
        let err =
            ConfigRoutePolicy::from_config(&Config::from_toml_str(&text).unwrap()).unwrap_err();
        assert!(err.to_string().contains("routing.models[1].match"), "{err}");
    }
}
