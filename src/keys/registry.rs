//! [`KeyRegistry`]: every client key the gateway accepts, from the config file and the
//! API, looked up by the SHA-256 digest of the presented key.

use super::limits::{check_name, FieldError, LimitFields};
use super::pg::SharedKeys;
use super::store::{KeyStore, StoreError};
use super::{check_globs, Authenticated, KeyInfo, KeySource, TeamInfo};
use crate::budget::Period;
use crate::credentials::Secret;
use crate::pricing::Money;
use http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::SystemTime;

/// Why a request's key was refused; the message never shows the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No key in `x-api-key` or `Authorization: Bearer`.
    #[error("a client key is required (x-api-key or Authorization: Bearer)")]
    Missing,
    /// A key no one issued.
    #[error("invalid client key")]
    Invalid,
    /// A key that was revoked.
    #[error("this client key has been revoked")]
    Revoked,
    /// A key past its `expires_at`.
    #[error("this client key has expired")]
    Expired,
}

/// Why a key could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The name is used by another key (from the config or the API).
    #[error("a key named {0:?} already exists")]
    NameTaken(String),
    /// No key has that name.
    #[error("no key named {0:?}")]
    NotFound(String),
    /// The key is defined in the config file, so the API cannot change it.
    #[error("key {0:?} is defined in the config file; change it there")]
    ReadOnly(String),
    /// A field's value is wrong.
    #[error("{0}")]
    Invalid(FieldError),
    /// Client keys are off (the config has no `[auth]`).
    #[error("client keys are not enabled: the config has no [auth] section")]
    Disabled,
    /// The key store could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The shared key store (PostgreSQL) cannot be reached; keys already known still work.
    #[error("the key database is unavailable: {0}")]
    Unavailable(String),
}

impl From<FieldError> for KeyError {
    fn from(error: FieldError) -> Self {
        KeyError::Invalid(error)
    }
}

/// A key to create through the API.
#[derive(Clone, Debug, Default)]
pub struct NewKey {
    /// Its name: 1 to 64 letters, digits, `_`, `-` or `.`, unused by any other key.
    pub name: String,
    /// Its team.
    pub team: Option<String>,
    /// Its limits, as given.
    pub limits: LimitFields,
    /// Globs on the requested model.
    pub models: Option<Vec<String>>,
    /// When it stops working.
    pub expires_at: Option<SystemTime>,
}

/// A change to an API key: each `Some` field is set (`Some(None)` clears it); `None`
/// fields keep their value.
#[derive(Clone, Debug, Default)]
pub struct KeyPatch {
    /// The team.
    pub team: Option<Option<String>>,
    /// The budget (clearing it removes the budget).
    pub budget_usd: Option<Option<Money>>,
    /// The budget's period (clearing it goes back to `day`).
    pub budget_period: Option<Option<Period>>,
    /// Requests per minute.
    pub rpm: Option<Option<u64>>,
    /// Tokens per minute.
    pub tpm: Option<Option<u64>>,
    /// Requests open at once.
    pub max_concurrent: Option<Option<u64>>,
    /// Model globs.
    pub models: Option<Option<Vec<String>>>,
    /// Expiry.
    pub expires_at: Option<Option<SystemTime>>,
}

/// A team and the names of the keys that belong to it.
pub type TeamKeys = (Arc<TeamInfo>, Vec<Arc<str>>);

#[derive(Default)]
pub(super) struct State {
    pub(super) keys: BTreeMap<Arc<str>, Arc<KeyInfo>>,
    pub(super) by_digest: HashMap<[u8; 32], Arc<str>>,
}

/// Every accepted client key and every configured team; see the [module docs](super).
///
/// Changes (create, update, revoke) take effect on the next request. API keys are
/// written to the [`KeyStore`] before they are answered; the store file is created on
/// the first API key, so a gateway that never creates one leaves no file behind.
pub struct KeyRegistry {
    enabled: bool,
    teams: BTreeMap<Arc<str>, Arc<TeamInfo>>,
    state: RwLock<State>,
    store_path: Option<PathBuf>,
    store: Mutex<Option<KeyStore>>,
    /// Held by each create, update and revoke from its check to its write.
    changes: Mutex<()>,
    /// The keys every replica shares, when they live in PostgreSQL.
    pub(super) shared: OnceLock<Arc<SharedKeys>>,
}

impl std::fmt::Debug for KeyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read();
        let names: Vec<&str> = state.keys.keys().map(|n| &**n).collect();
        f.debug_struct("KeyRegistry")
            .field("enabled", &self.enabled)
            .field("keys", &names)
            .field("teams", &self.teams.keys().collect::<Vec<_>>())
            .field("store_path", &self.store_path)
            .finish()
    }
}

impl KeyRegistry {
    /// A registry with no keys that accepts none and creates none (no `[auth]`).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            teams: BTreeMap::new(),
            state: RwLock::new(State::default()),
            store_path: None,
            store: Mutex::new(None),
            changes: Mutex::new(()),
            shared: OnceLock::new(),
        }
    }

    /// A registry of the config's keys (each with its value) and teams, keeping API keys
    /// in memory only until [`with_store`](Self::with_store) gives it a file. An empty
    /// key is never accepted, so it is left out; a later key with an earlier one's name
    /// or value is left out too.
    pub fn new(config_keys: Vec<(KeyInfo, Secret)>, teams: Vec<TeamInfo>) -> Self {
        let mut state = State::default();
        for (info, secret) in config_keys {
            if secret.expose().is_empty() || state.keys.contains_key(&info.name) {
                continue;
            }
            let digest = digest(secret.expose().as_bytes());
            if state.by_digest.contains_key(&digest) {
                continue;
            }
            state.by_digest.insert(digest, info.name.clone());
            state.keys.insert(info.name.clone(), Arc::new(info));
        }
        Self {
            enabled: true,
            teams: teams
                .into_iter()
                .map(|team| (team.name.clone(), Arc::new(team)))
                .collect(),
            state: RwLock::new(state),
            store_path: None,
            store: Mutex::new(None),
            changes: Mutex::new(()),
            shared: OnceLock::new(),
        }
    }

    /// A registry of config keys with a name and a value each, and no limits.
    pub fn from_named_keys(keys: Vec<(String, Secret)>) -> Self {
        let now = SystemTime::now();
        Self::new(
            keys.into_iter()
                .map(|(name, secret)| (KeyInfo::config(&name, now), secret))
                .collect(),
            Vec::new(),
        )
    }

    /// Keep API keys in the SQLite file at `path`, loading the ones already there.
    ///
    /// Fails when the file exists but cannot be read, or holds a key named like a
    /// config key.
    pub fn with_store(mut self, path: &Path) -> Result<Self, StoreError> {
        self.store_path = Some(path.to_owned());
        if path.exists() {
            let store = KeyStore::open(path)?;
            {
                let mut state = self.write();
                for (info, digest) in store.load()? {
                    if state.keys.contains_key(&info.name) {
                        return Err(StoreError::from_message(format!(
                            "the stored key {:?} has the name of a key in the config file; rename one",
                            &*info.name
                        )));
                    }
                    state.by_digest.insert(digest, info.name.clone());
                    state.keys.insert(info.name.clone(), Arc::new(info));
                }
            }
            *self.store.get_mut().unwrap_or_else(PoisonError::into_inner) = Some(store);
        }
        Ok(self)
    }

    /// Whether client keys are on (`[auth]` is configured).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key in `headers` (`x-api-key`, else `Authorization: Bearer`), if it is one of
    /// ours and usable now.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Authenticated, AuthFailure> {
        let presented = presented_key(headers)
            .filter(|key| !key.is_empty())
            .ok_or(AuthFailure::Missing)?;
        let digest = digest(presented);
        let key = {
            let state = self.read();
            let name = state.by_digest.get(&digest).ok_or(AuthFailure::Invalid)?;
            state.keys.get(name).cloned().ok_or(AuthFailure::Invalid)?
        };
        if key.revoked_at.is_some() {
            return Err(AuthFailure::Revoked);
        }
        if !key.is_usable_at(SystemTime::now()) {
            return Err(AuthFailure::Expired);
        }
        let team = key.team.as_deref().map(|name| self.team_or_unlimited(name));
        Ok(Authenticated { key, team })
    }

    fn team_or_unlimited(&self, name: &str) -> Arc<TeamInfo> {
        self.teams
            .get(name)
            .cloned()
            .unwrap_or_else(|| Arc::new(TeamInfo::unlimited(name)))
    }

    /// The team `name`: a configured one, or (without limits) one that some key names.
    pub fn team(&self, name: &str) -> Option<Arc<TeamInfo>> {
        if let Some(team) = self.teams.get(name) {
            return Some(team.clone());
        }
        let named = self
            .read()
            .keys
            .values()
            .any(|key| key.team.as_deref() == Some(name));
        named.then(|| Arc::new(TeamInfo::unlimited(name)))
    }

    /// Every team (configured ones and ones only named by keys), by name, with the
    /// names of its keys.
    pub fn teams(&self) -> Vec<TeamKeys> {
        let mut teams: BTreeMap<Arc<str>, TeamKeys> = self
            .teams
            .iter()
            .map(|(name, team)| (name.clone(), (team.clone(), Vec::new())))
            .collect();
        for key in self.read().keys.values() {
            if let Some(team) = &key.team {
                teams
                    .entry(team.clone())
                    .or_insert_with(|| (Arc::new(TeamInfo::unlimited(team)), Vec::new()))
                    .1
                    .push(key.name.clone());
            }
        }
        teams.into_values().collect()
    }

    /// Every key, revoked ones included, by name.
    pub fn list(&self) -> Vec<Arc<KeyInfo>> {
        self.read().keys.values().cloned().collect()
    }

    /// The key named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<KeyInfo>> {
        self.read().keys.get(name).cloned()
    }

    /// Create an API key: the key's value (`gk-` and 64 hex digits, 256 bits from the
    /// OS's random source) is returned once and never kept, only its digest.
    ///
    /// With keys shared through PostgreSQL this refuses: use
    /// [`create_key`](Self::create_key).
    pub fn create(&self, new: NewKey) -> Result<(Arc<KeyInfo>, Secret), KeyError> {
        self.local_only()?;
        let (info, digest, secret) = self.prepare(new)?;
        // One change at a time, so two creates of one name cannot both pass; requests
        // keep authenticating while the store writes.
        let _changing = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        if self.read().keys.contains_key(&info.name) {
            return Err(KeyError::NameTaken(info.name.to_string()));
        }
        self.with_store_file(|store| store.insert(&info, &digest))?;
        Ok((self.install(info, digest), secret))
    }

    /// Refuse a synchronous change when keys are shared (it would bypass PostgreSQL).
    fn local_only(&self) -> Result<(), KeyError> {
        match self.shared.get() {
            None => Ok(()),
            Some(_) => Err(KeyError::Store(StoreError::from_message(
                "keys are shared through PostgreSQL: change them with the async methods".into(),
            ))),
        }
    }

    /// A checked new key, its digest and its value, not stored yet.
    pub(super) fn prepare(&self, new: NewKey) -> Result<(KeyInfo, [u8; 32], Secret), KeyError> {
        if !self.enabled {
            return Err(KeyError::Disabled);
        }
        check_name("name", &new.name)?;
        if let Some(team) = &new.team {
            check_name("team", team)?;
        }
        let limits = new.limits.limits()?;
        if let Some(models) = &new.models {
            check_globs("models", models).map_err(|(f, m)| FieldError::new(f, m))?;
        }
        let secret = generate_key()?;
        let digest = digest(secret.expose().as_bytes());
        let info = KeyInfo {
            name: Arc::from(new.name.as_str()),
            team: new.team.as_deref().map(Arc::from),
            limits,
            models: new.models,
            expires_at: new.expires_at,
            revoked_at: None,
            source: KeySource::Api,
            created_at: SystemTime::now(),
        };
        if self.read().keys.contains_key(&info.name) {
            return Err(KeyError::NameTaken(new.name));
        }
        Ok((info, digest, secret))
    }

    /// Make a stored key known (or replace what was known of it).
    pub(super) fn install(&self, info: KeyInfo, digest: [u8; 32]) -> Arc<KeyInfo> {
        let info = Arc::new(info);
        let mut state = self.write();
        state.by_digest.insert(digest, info.name.clone());
        state.keys.insert(info.name.clone(), info.clone());
        info
    }

    /// Change the API key `name` (refused with shared keys: use
    /// [`update_key`](Self::update_key)).
    pub fn update(&self, name: &str, patch: KeyPatch) -> Result<Arc<KeyInfo>, KeyError> {
        self.change(name, |key| apply_patch(key, patch))
    }

    /// Revoke the API key `name`: it is refused from the next request on, and stays
    /// listed with its `revoked_at`. Revoking it again changes nothing. (Refused with
    /// shared keys: use [`revoke_key`](Self::revoke_key).)
    pub fn revoke(&self, name: &str) -> Result<Arc<KeyInfo>, KeyError> {
        self.change(name, revoke_now)
    }

    fn change(
        &self,
        name: &str,
        edit: impl FnOnce(&mut KeyInfo) -> Result<(), FieldError>,
    ) -> Result<Arc<KeyInfo>, KeyError> {
        self.local_only()?;
        let _changing = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let (current, key) = self.edited(name, edit)?;
        let Some(key) = key else {
            return Ok(current);
        };
        self.with_store_file(|store| store.update(&key))?;
        let key = Arc::new(key);
        self.write().keys.insert(key.name.clone(), key.clone());
        Ok(key)
    }

    /// The API key `name` and, if `edit` changes it, the changed copy (not stored yet).
    pub(super) fn edited(
        &self,
        name: &str,
        edit: impl FnOnce(&mut KeyInfo) -> Result<(), FieldError>,
    ) -> Result<(Arc<KeyInfo>, Option<KeyInfo>), KeyError> {
        let current = self
            .get(name)
            .ok_or_else(|| KeyError::NotFound(name.to_owned()))?;
        if current.source == KeySource::Config {
            return Err(KeyError::ReadOnly(name.to_owned()));
        }
        let mut key = KeyInfo::clone(&current);
        edit(&mut key)?;
        let changed = (key != *current).then_some(key);
        Ok((current, changed))
    }

    /// Run `write` on the store, opening (creating) its file first if needed; without a
    /// store path API keys live in memory only.
    fn with_store_file(
        &self,
        write: impl FnOnce(&KeyStore) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let Some(path) = &self.store_path else {
            return Ok(());
        };
        let mut store = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        if store.is_none() {
            *store = Some(KeyStore::open(path)?);
        }
        write(store.as_ref().expect("opened above"))
    }
}

impl KeyInfo {
    /// A config key named `name` with no limits, loaded at `now`.
    pub fn config(name: &str, now: SystemTime) -> Self {
        Self {
            name: Arc::from(name),
            team: None,
            limits: Default::default(),
            models: None,
            expires_at: None,
            revoked_at: None,
            source: KeySource::Config,
            created_at: now,
        }
    }
}

/// Apply `patch` to `key`, checking each changed field.
pub(super) fn apply_patch(key: &mut KeyInfo, patch: KeyPatch) -> Result<(), FieldError> {
    let mut fields = LimitFields::of(&key.limits);
    if let Some(budget) = patch.budget_usd {
        fields.budget_usd = budget;
    }
    match patch.budget_period {
        Some(period) => fields.budget_period = period,
        // A period kept from a budget being cleared limits nothing.
        None if fields.budget_usd.is_none() => fields.budget_period = None,
        None => {}
    }
    if let Some(rpm) = patch.rpm {
        fields.rpm = rpm;
    }
    if let Some(tpm) = patch.tpm {
        fields.tpm = tpm;
    }
    if let Some(max_concurrent) = patch.max_concurrent {
        fields.max_concurrent = max_concurrent;
    }
    key.limits = fields.limits()?;
    if let Some(team) = patch.team {
        if let Some(team) = &team {
            check_name("team", team)?;
        }
        key.team = team.as_deref().map(Arc::from);
    }
    if let Some(models) = patch.models {
        if let Some(models) = &models {
            check_globs("models", models).map_err(|(f, m)| FieldError::new(f, m))?;
        }
        key.models = models;
    }
    if let Some(expires_at) = patch.expires_at {
        key.expires_at = expires_at;
    }
    Ok(())
}

/// Revoke `key` now unless it already is.
pub(super) fn revoke_now(key: &mut KeyInfo) -> Result<(), FieldError> {
    if key.revoked_at.is_none() {
        key.revoked_at = Some(SystemTime::now());
    }
    Ok(())
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A new client key: `gk-` and 32 bytes from the OS's random source, in hex.
fn generate_key() -> Result<Secret, StoreError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::from_message(format!("no randomness for a new key: {e}")))?;
    Ok(Secret::new(format!("gk-{}", super::store::hex(&bytes))))
}

/// The key in `x-api-key`, else in `Authorization: Bearer`.
pub fn presented_key(headers: &HeaderMap) -> Option<&[u8]> {
    if let Some(key) = headers.get("x-api-key") {
        return Some(key.as_bytes());
    }
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at(value.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| token.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn headers(key: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("x-api-key", key.parse().unwrap());
        map
    }

    #[test]
    fn created_keys_authenticate_until_revoked_or_expired() {
        let registry = KeyRegistry::from_named_keys(vec![("ci".into(), Secret::new("gk-ci"))]);
        assert_eq!(
            &*registry.authenticate(&headers("gk-ci")).unwrap().key.name,
            "ci"
        );
        let (info, secret) = registry
            .create(NewKey {
                name: "bot".into(),
                team: Some("platform".into()),
                ..NewKey::default()
            })
            .unwrap();
        assert_eq!(info.source, KeySource::Api);
        let key = secret.expose();
        assert!(key.starts_with("gk-") && key.len() == 3 + 64, "{key}");
        let auth = registry.authenticate(&headers(key)).unwrap();
        assert_eq!(&*auth.team.unwrap().name, "platform");
        assert!(matches!(
            registry.create(NewKey {
                name: "ci".into(),
                ..NewKey::default()
            }),
            Err(KeyError::NameTaken(_))
        ));
        assert!(matches!(registry.revoke("ci"), Err(KeyError::ReadOnly(_))));
        let past = SystemTime::now() - Duration::from_secs(1);
        registry
            .update(
                "bot",
                KeyPatch {
                    expires_at: Some(Some(past)),
                    ..KeyPatch::default()
                },
            )
            .unwrap();
        assert_eq!(
            registry.authenticate(&headers(key)).unwrap_err(),
            AuthFailure::Expired
        );
        registry.revoke("bot").unwrap();
        assert_eq!(
            registry.authenticate(&headers(key)).unwrap_err(),
            AuthFailure::Revoked
        );
        assert_eq!(
            registry.authenticate(&headers("gk-other")).unwrap_err(),
            AuthFailure::Invalid
        );
        assert_eq!(
            registry.authenticate(&HeaderMap::new()).unwrap_err(),
            AuthFailure::Missing
        );
        let debug = format!("{registry:?}");
        assert!(!debug.contains(key) && !debug.contains("gk-ci") && debug.contains("bot"));
    }

    #[test]
    fn concurrent_creates_of_one_name_give_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(
            KeyRegistry::from_named_keys(Vec::new())
                .with_store(&dir.path().join("keys.db"))
                .unwrap(),
        );
        let made: Vec<bool> = (0..8)
            .map(|_| {
                let registry = registry.clone();
                std::thread::spawn(move || {
                    registry
                        .create(NewKey {
                            name: "same".into(),
                            ..NewKey::default()
                        })
                        .is_ok()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(made.iter().filter(|ok| **ok).count(), 1, "{made:?}");
        assert_eq!(registry.list().len(), 1);
    }

    #[test]
    fn patching_limits_names_bad_fields() {
        let registry = KeyRegistry::from_named_keys(Vec::new());
        registry
            .create(NewKey {
                name: "b".into(),
                ..NewKey::default()
            })
            .unwrap();
        let error = registry
            .update(
                "b",
                KeyPatch {
                    rpm: Some(Some(0)),
                    ..KeyPatch::default()
                },
            )
            .unwrap_err();
        assert!(
            matches!(&error, KeyError::Invalid(e) if e.field == "rpm"),
            "{error}"
        );
        let key = registry
            .update(
                "b",
                KeyPatch {
                    budget_usd: Some(Some(Money::from_picos(9))),
                    ..KeyPatch::default()
                },
            )
            .unwrap();
        assert_eq!(key.limits.budget.unwrap().period, Period::Day);
        let key = registry
            .update(
                "b",
                KeyPatch {
                    budget_usd: Some(None),
                    ..KeyPatch::default()
                },
            )
            .unwrap();
        assert_eq!(key.limits.budget, None);
        assert!(matches!(
            registry.update("nope", KeyPatch::default()),
            Err(KeyError::NotFound(_))
        ));
        assert!(matches!(
            KeyRegistry::disabled().create(NewKey::default()),
            Err(KeyError::Disabled)
        ));
    }
}
