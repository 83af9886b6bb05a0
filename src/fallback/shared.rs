//! Provider cool-downs shared by every replica through Redis ([`share_cool_downs`]).
//!
//! No request waits on Redis for this: the request path reads the local
//! [`ProviderHealth`] only. A replica that starts a cool-down hands it to a bounded
//! queue (dropped when full: the cool-down then stays local); one thread per gateway
//! sends those to Redis and, every [`POLL`], reads every provider's remaining cool-down
//! in one script and copies it into the local health. A cool-down is a Redis key
//! `{PREFIX:health}:PROVIDER` that expires with it (`PX`, on the server's clock, so
//! replicas' clocks need not agree), only ever made longer; a replica that succeeds with
//! a provider it knew cooling down deletes it. That poll is also the gateway's Redis
//! ping while idle: its outcome is reported to `on_reachable` (the ledger's health).
//!
//! While Redis is unreachable each replica keeps its own cool-downs (the last ones
//! copied expire on their own) and the poll goes on, so sharing resumes when it is back.

use super::ProviderHealth;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::Script;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often each replica reads the shared cool-downs (and pings Redis).
pub const POLL: Duration = Duration::from_millis(250);

/// How long one Redis call may take.
const TIMEOUT: Duration = Duration::from_secs(1);

/// Cool-down changes waiting to be sent.
const QUEUE: usize = 256;

/// Make a key's cool-down at least `ARGV[1]` ms from now.
const COOL_DOWN: &str = "local t = redis.call('PTTL', KEYS[1]) \
    if t < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end \
    return 1";

/// Every key's remaining ms (negative: none).
const READ: &str = "local out = {} \
    for i, k in ipairs(KEYS) do out[i] = redis.call('PTTL', k) end \
    return out";

/// A change to send to Redis.
#[derive(Debug)]
enum Change {
    CoolDown(String, Duration),
    Clear(String),
}

/// The sending side the health hands its cool-downs to.
#[derive(Debug)]
pub(super) struct CoolDownSink(mpsc::Sender<Change>);

impl CoolDownSink {
    pub(super) fn cool_down(&self, provider: &str, wait: Duration) {
        let _ = self.0.try_send(Change::CoolDown(provider.to_owned(), wait));
    }

    pub(super) fn clear(&self, provider: &str) {
        let _ = self.0.try_send(Change::Clear(provider.to_owned()));
    }
}

/// Share `health`'s cool-downs of `providers` with every gateway on the Redis at `url`
/// under `prefix`, on a thread of its own until `health` is dropped; `on_reachable` hears
/// after every poll whether Redis answered. The error never repeats the URL.
pub fn share_cool_downs(
    health: &Arc<ProviderHealth>,
    url: &str,
    prefix: &str,
    providers: Vec<String>,
    on_reachable: impl Fn(bool) + Send + 'static,
) -> Result<(), String> {
    let client = ::redis::Client::open(url)
        .map_err(|_| "the Redis URL is not valid (expected redis://host:port)".to_owned())?;
    let (tx, rx) = mpsc::channel(QUEUE);
    health.share_with(CoolDownSink(tx));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the cool-down thread: {e}"))?;
    let poller = Poller {
        health: Arc::downgrade(health),
        keys: providers.iter().map(|p| key_of(prefix, p)).collect(),
        providers,
        prefix: prefix.to_owned(),
        rx,
        on_reachable: Box::new(on_reachable),
    };
    std::thread::Builder::new()
        .name("cool-downs".into())
        .spawn(move || runtime.block_on(poller.run(client)))
        .map_err(|e| format!("cannot start the cool-down thread: {e}"))?;
    Ok(())
}

struct Poller {
    health: Weak<ProviderHealth>,
    providers: Vec<String>,
    keys: Vec<String>,
    prefix: String,
    rx: mpsc::Receiver<Change>,
    on_reachable: Box<dyn Fn(bool) + Send>,
}

impl Poller {
    async fn run(mut self, client: ::redis::Client) {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let Ok(mut connection) = ConnectionManager::new_lazy_with_config(client, config) else {
            tracing::warn!("cannot set up the Redis connection for cool-downs");
            return;
        };
        let (cool_down, read) = (Script::new(COOL_DOWN), Script::new(READ));
        let mut was_up = true;
        while self.health.strong_count() > 0 {
            let result = self.round(&mut connection, &cool_down, &read).await;
            let up = result.is_ok();
            if let Err(error) = result {
                if was_up {
                    tracing::warn!(%error, "cannot share provider cool-downs through Redis");
                }
            }
            was_up = up;
            (self.on_reachable)(up);
            tokio::time::sleep(POLL).await;
        }
    }

    /// Send what changed here, then read every provider's cool-down.
    async fn round(
        &mut self,
        connection: &mut ConnectionManager,
        cool_down: &Script,
        read: &Script,
    ) -> Result<(), String> {
        let call = |e: ::redis::RedisError| format!("Redis: {e}");
        while let Ok(change) = self.rx.try_recv() {
            match change {
                Change::CoolDown(provider, wait) => {
                    let mut invocation = cool_down.key(key_of(&self.prefix, &provider));
                    invocation.arg(wait.as_millis().max(1) as u64);
                    timed(invocation.invoke_async::<i64>(connection))
                        .await?
                        .map_err(call)?;
                }
                Change::Clear(provider) => {
                    let key = key_of(&self.prefix, &provider);
                    timed(::redis::cmd("DEL").arg(key).query_async::<i64>(connection))
                        .await?
                        .map_err(call)?;
                }
            }
        }
        if self.keys.is_empty() {
            return timed(::redis::cmd("PING").query_async::<String>(connection))
                .await?
                .map(drop)
                .map_err(call);
        }
        let mut invocation = read.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        let remaining: Vec<i64> = timed(invocation.invoke_async(connection))
            .await?
            .map_err(call)?;
        if let Some(health) = self.health.upgrade() {
            for (provider, ms) in self.providers.iter().zip(remaining) {
                let left = u64::try_from(ms).ok().filter(|ms| *ms > 0);
                health.set_remote(provider, left.map(Duration::from_millis));
            }
        }
        Ok(())
    }
}

/// The Redis key of `provider`'s cool-down (one hash tag for all, read in one script).
fn key_of(prefix: &str, provider: &str) -> String {
    format!("{{{prefix}:health}}:{provider}")
}

async fn timed<T>(call: impl std::future::Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(TIMEOUT, call)
        .await
        .map_err(|_| format!("Redis did not answer within {} ms", TIMEOUT.as_millis()))
}
