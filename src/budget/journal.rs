//! [`SpendJournal`]: settled spend kept in a SQLite file, so it survives a restart.
//!
//! Each settlement updates the absolute spend of the current windows of its scopes;
//! a writer thread coalesces those updates and commits them in one transaction at
//! most every [`FLUSH_EVERY`], so the request path never waits on the disk. A process
//! killed outright loses at most the last interval's settlements; a clean stop (the
//! journal dropped) writes everything.

use super::{Period, Scope, ScopeKind};
use crate::pricing::Money;
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The longest a settlement waits before it is on disk.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);

type WindowKey = (Scope, Period, u64);

/// Settled spend per scope and window, in a SQLite file. Each settlement updates the
/// absolute spend of its windows; a writer thread commits the updates at most every
/// 100 ms, and everything when the journal is dropped.
pub struct SpendJournal {
    loaded: Vec<(Scope, Period, u64, Money)>,
    shared: Arc<Pending>,
    writer: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Pending {
    state: Mutex<PendingState>,
    wake: Condvar,
}

#[derive(Default)]
struct PendingState {
    rows: HashMap<WindowKey, Money>,
    stop: bool,
}

impl std::fmt::Debug for SpendJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpendJournal").finish_non_exhaustive()
    }
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS budget_spend (
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    period TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    spent_picos TEXT NOT NULL,
    PRIMARY KEY (scope, name, period, window_start)
)";

impl SpendJournal {
    /// The journal in the SQLite file at `path` (a file other tables may share): what it
    /// holds is read now; the file is created with the first settlement, not before.
    pub fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let loaded = if path.exists() {
            load(&connect(path)?)?
        } else {
            Vec::new()
        };
        let shared = Arc::new(Pending::default());
        let writer = {
            let shared = shared.clone();
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name("budget-journal".into())
                .spawn(move || write_loop(&path, &shared))
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?
        };
        Ok(Self {
            loaded,
            shared,
            writer: Some(writer),
        })
    }

    /// What the file held when it was opened: `(scope, period, window start, spent)`.
    pub(crate) fn load(&self) -> Vec<(Scope, Period, u64, Money)> {
        self.loaded.clone()
    }

    /// Queue the spend of these windows (absolute amounts; the latest wins).
    pub(crate) fn record(&self, rows: Vec<(Scope, Period, u64, Money)>) {
        if rows.is_empty() {
            return;
        }
        let mut state = self.shared.lock();
        for (scope, period, start, spent) in rows {
            state.rows.insert((scope, period, start), spent);
        }
        drop(state);
        self.shared.wake.notify_one();
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for SpendJournal {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.execute(SCHEMA, [])?;
    Ok(connection)
}

fn load(connection: &Connection) -> Result<Vec<(Scope, Period, u64, Money)>, rusqlite::Error> {
    let mut statement = connection
        .prepare("SELECT scope, name, period, window_start, spent_picos FROM budget_spend")?;
    let rows = statement.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, String>(4)?,
        ))
    })?;
    let mut loaded = Vec::new();
    for row in rows {
        let (kind, name, period, start, picos) = row?;
        let scope = match kind.as_str() {
            "key" => Scope::key(&name),
            "team" => Scope::team(&name),
            _ => continue,
        };
        let (Ok(period), Ok(start), Ok(picos)) = (
            period.parse::<Period>(),
            u64::try_from(start),
            picos.parse::<u128>(),
        ) else {
            tracing::warn!(scope = %scope, "budget journal: an unreadable row is ignored");
            continue;
        };
        loaded.push((scope, period, start, Money::from_picos(picos)));
    }
    Ok(loaded)
}

fn write_loop(path: &Path, shared: &Pending) {
    let mut connection = None;
    loop {
        let (rows, stop) = {
            let mut state = shared.lock();
            if state.rows.is_empty() && !state.stop {
                state = shared
                    .wake
                    .wait_timeout(state, FLUSH_EVERY)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            (std::mem::take(&mut state.rows), state.stop)
        };
        if !rows.is_empty() {
            let written = match &mut connection {
                Some(connection) => write(connection, &rows),
                None => connect(path).and_then(|opened| write(connection.insert(opened), &rows)),
            };
            if let Err(error) = written {
                tracing::error!(%error, "budget journal: settled spend could not be written");
            }
        }
        if stop {
            return;
        }
        // Coalesce: let settlements gather for one interval before the next commit.
        std::thread::sleep(FLUSH_EVERY);
    }
}

fn write(connection: &mut Connection, rows: &HashMap<WindowKey, Money>) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut upsert = transaction.prepare_cached(
            "INSERT INTO budget_spend (scope, name, period, window_start, spent_picos)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (scope, name, period, window_start) DO UPDATE SET spent_picos = ?5",
        )?;
        for ((scope, period, start), spent) in rows {
            let kind = match scope.kind {
                ScopeKind::Key => "key",
                ScopeKind::Team => "team",
            };
            upsert.execute(params![
                kind,
                &*scope.name,
                period.as_str(),
                i64::try_from(*start).unwrap_or(i64::MAX),
                spent.picos().to_string()
            ])?;
        }
    }
    transaction.commit()
}
