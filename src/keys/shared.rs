//! API keys shared by every replica through PostgreSQL ([`SharedKeys`]).
//!
//! Auth never waits on PostgreSQL: each replica keeps its in-memory registry and a
//! thread polls `api_keys` for rows whose `version` is above the last one it saw, every
//! [`POLL`]. Polling rather than `LISTEN/NOTIFY`: a notification sent while a replica
//! is disconnected is lost (so a poll would be needed anyway as the safety net), and
//! an indexed `version > $1` that returns nothing costs PostgreSQL next to nothing at
//! four a second per replica. A key created or revoked on one replica is therefore
//! known to the others within one poll (plus the query's time).
//!
//! Creating, changing and revoking write PostgreSQL first and answer only after it
//! committed; while it is unreachable they fail with [`KeyError::Unavailable`] (503)
//! and every key already known keeps working as it was.

use super::pg::{PgKeyStore, SharedKeys};
use super::registry::{apply_patch, revoke_now};
use super::{KeyError, KeyInfo, KeyPatch, KeyRegistry, KeySource, NewKey, StoreError};
use crate::credentials::Secret;
use crate::ship::PgAudit;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How often each replica asks PostgreSQL for key changes.
pub const POLL: Duration = Duration::from_millis(250);

/// How long start-up waits for the first load before serving without it.
const FIRST_LOAD: Duration = Duration::from_secs(5);

impl KeyRegistry {
    /// Keep API keys in PostgreSQL: `writer` and `reader` are two connections to one
    /// schema (writes from request handlers, polls from this registry's own thread).
    /// Waits up to 5 s for the first load, then serves with what it has (a PostgreSQL
    /// that is down at start is retried every poll).
    pub fn share_through(
        self: &Arc<Self>,
        writer: PgAudit,
        reader: PgAudit,
    ) -> std::io::Result<()> {
        let shared = Arc::new(SharedKeys {
            writer: PgKeyStore::new(writer),
            healthy: AtomicBool::new(false),
            last_error: Mutex::new(None),
        });
        if self.shared.set(shared.clone()).is_err() {
            return Ok(());
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (loaded, first) = std::sync::mpsc::sync_channel(1);
        let registry = Arc::downgrade(self);
        let reader = PgKeyStore::new(reader);
        std::thread::Builder::new()
            .name("key-poller".into())
            .spawn(move || runtime.block_on(poll(registry, shared, reader, loaded)))?;
        if first.recv_timeout(FIRST_LOAD).is_err() {
            tracing::warn!("API keys not loaded from PostgreSQL yet; serving the config's keys");
        }
        Ok(())
    }

    /// The shared side, when keys live in PostgreSQL.
    pub fn shared(&self) -> Option<&SharedKeys> {
        self.shared.get().map(|s| &**s)
    }

    /// Create an API key (as [`create`](Self::create)); with shared keys, stored in
    /// PostgreSQL first and known to every replica within a poll.
    pub async fn create_key(
        self: &Arc<Self>,
        new: NewKey,
    ) -> Result<(Arc<KeyInfo>, Secret), KeyError> {
        let Some(shared) = self.shared.get() else {
            let registry = self.clone();
            return blocking(move || registry.create(new)).await;
        };
        let (info, digest, secret) = self.prepare(new)?;
        shared.writer.insert(&info, &digest).await?;
        Ok((self.install(info, digest), secret))
    }

    /// Change an API key (as [`update`](Self::update)).
    pub async fn update_key(
        self: &Arc<Self>,
        name: String,
        patch: KeyPatch,
    ) -> Result<Arc<KeyInfo>, KeyError> {
        if self.shared.get().is_none() {
            let registry = self.clone();
            return blocking(move || registry.update(&name, patch)).await;
        }
        self.change_shared(&name, |key| apply_patch(key, patch))
            .await
    }

    /// Revoke an API key (as [`revoke`](Self::revoke)); with shared keys, refused by
    /// every replica within a poll.
    pub async fn revoke_key(self: &Arc<Self>, name: String) -> Result<Arc<KeyInfo>, KeyError> {
        if self.shared.get().is_none() {
            let registry = self.clone();
            return blocking(move || registry.revoke(&name)).await;
        }
        self.change_shared(&name, revoke_now).await
    }

    async fn change_shared(
        &self,
        name: &str,
        edit: impl FnOnce(&mut KeyInfo) -> Result<(), super::FieldError>,
    ) -> Result<Arc<KeyInfo>, KeyError> {
        let shared = self.shared.get().expect("checked by the caller");
        let (current, key) = self.edited(name, edit)?;
        let Some(key) = key else {
            return Ok(current);
        };
        shared.writer.update(&key).await?;
        let key = Arc::new(key);
        self.write().keys.insert(key.name.clone(), key.clone());
        Ok(key)
    }

    /// Take in rows read from PostgreSQL; a stored key named like a config key is
    /// ignored (the config's wins).
    fn apply_shared(&self, rows: Vec<(KeyInfo, [u8; 32])>) {
        let mut state = self.write();
        for (info, digest) in rows {
            match state.keys.get(&info.name) {
                Some(known) if known.source == KeySource::Config => {
                    tracing::warn!(key = %info.name, "a stored API key has the name of a config key; ignored");
                    continue;
                }
                Some(known) if **known == info => continue,
                _ => {}
            }
            state.by_digest.insert(digest, info.name.clone());
            state.keys.insert(info.name.clone(), Arc::new(info));
        }
    }
}

/// Run a store call of the SQLite path off the async workers.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, KeyError> + Send + 'static,
) -> Result<T, KeyError> {
    tokio::task::spawn_blocking(call).await.unwrap_or_else(|_| {
        Err(KeyError::Store(StoreError::from_message(
            "the key store's task failed".into(),
        )))
    })
}

/// The poller: every [`POLL`], the rows after the last version seen, until the
/// registry is dropped.
async fn poll(
    registry: Weak<KeyRegistry>,
    shared: Arc<SharedKeys>,
    reader: PgKeyStore,
    loaded: std::sync::mpsc::SyncSender<()>,
) {
    let mut version = 0;
    let mut first = Some(loaded);
    loop {
        let result = reader.changes_since(version).await;
        let Some(registry) = registry.upgrade() else {
            return;
        };
        match result {
            Ok(rows) => {
                if let Some(last) = rows.last() {
                    version = last.0;
                }
                registry.apply_shared(rows.into_iter().map(|(_, info, d)| (info, d)).collect());
                shared.polled(Ok(()));
                if let Some(loaded) = first.take() {
                    let _ = loaded.try_send(());
                }
            }
            Err(error) => {
                if shared.healthy() {
                    tracing::warn!(%error, "cannot read API keys from PostgreSQL; keeping the known ones");
                }
                shared.polled(Err(error.to_string()));
            }
        }
        drop(registry);
        tokio::time::sleep(POLL).await;
    }
}
