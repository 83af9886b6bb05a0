//! Client keys with limits, teams, and where API-created keys are kept.
//!
//! A [`KeyRegistry`] holds every key the gateway accepts: the config file's
//! `[auth] client_keys` (read-only) and the keys created through `POST /gateway/keys`
//! (kept in a [`KeyStore`], a SQLite file, so they survive a restart; or, with
//! `[audit] postgres_url`, in PostgreSQL, shared by every replica: see [`SharedKeys`]). Each key is a
//! [`KeyInfo`]: its name, team, [`Limits`](crate::budget::Limits), model globs, expiry
//! and revocation. The registry never keeps a key's value: it looks keys up by the
//! SHA-256 digest of what the client presents (a key is 256 random bits, so its digest
//! says nothing useful about it).
//!
//! Auth puts an [`Authenticated`] (the key and its [`TeamInfo`]) into each accepted
//! request, for the layers that admit requests against the limits and check `models`.
//!
//! ```
//! use llm_gateway::keys::{KeyRegistry, NewKey};
//! use llm_gateway::config::Secret;
//! let registry = KeyRegistry::from_named_keys(vec![("ci".into(), Secret::new("gk-ci"))]);
//! let (info, key) = registry.create(NewKey { name: "bot".into(), ..NewKey::default() }).unwrap();
//! assert!(key.expose().starts_with("gk-"));
//! assert_eq!(registry.list().len(), 2);
//! # let _ = info;
//! ```

mod info;
mod limits;
mod pg;
mod registry;
mod shared;
mod store;
mod usd;

pub(crate) use info::globs_allow;
pub use info::{check_globs, Authenticated, KeyInfo, KeySource, TeamInfo};
pub use limits::{check_name, parse_period, FieldError, LimitFields};
pub use pg::SharedKeys;
pub use registry::{presented_key, AuthFailure, KeyError, KeyPatch, KeyRegistry, NewKey, TeamKeys};
pub use shared::POLL as SHARED_KEYS_POLL;
pub use store::{KeyStore, StoreError};
pub use usd::{parse_usd, usd_from_f64};
