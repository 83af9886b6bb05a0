//! Retention in bounded steps: rows past `retention_days`, the oldest rows while
//! the used pages exceed `max_bytes`, chunks no row refers to, then incremental
//! vacuum and a truncating checkpoint. The writer runs one step at a time between
//! batches, so a large prune never holds records back for long.

use std::collections::HashSet;

use rusqlite::{params, Connection};

use super::chunks;
use super::schema;
use super::writer::{pages, WriterSettings};

/// Rows deleted per prune step.
pub(crate) const PRUNE_CHUNK: i64 = 1000;
/// Pages released per `PRAGMA incremental_vacuum` step.
pub(crate) const VACUUM_CHUNK: u64 = 2048;
pub(crate) const MS_PER_DAY: i64 = 86_400_000;

/// Progress of one prune run (kept across steps).
#[derive(Debug)]
pub(crate) struct PruneRun {
    pub(crate) deleted: u64,
    size_target: Option<u64>,
    last_freelist: Option<u64>,
    did_work: bool,
    /// Unreferenced chunks are swept in id order; `None` once done.
    sweep_after: Option<i64>,
    /// Chunks deleted so far (rows' released chunks and swept ones): the
    /// writer's prefix cache may name them, so it is cleared when this
    /// grows.
    pub(crate) chunks_deleted: u64,
}

impl Default for PruneRun {
    fn default() -> Self {
        PruneRun {
            deleted: 0,
            size_target: None,
            last_freelist: None,
            did_work: false,
            sweep_after: Some(0),
            chunks_deleted: 0,
        }
    }
}

/// One bounded prune step. Returns `Ok(true)` while there is more to do.
///
/// Order: rows older than `retention_days`; then, while the used pages
/// exceed `max_bytes`, the oldest rows until 90 % of `max_bytes` is reached
/// (the 10 % slack keeps it from pruning on every commit) — each deletion
/// releases its rows' chunk references and deletes the chunks left
/// unreferenced, in the same transaction; then a sweep of chunks nobody
/// refers to (left by a crash or an evicted staged body) except `pinned`
/// (held for staged bodies); then `incremental_vacuum` until the free list
/// is empty; finally a truncating WAL checkpoint so the file on disk
/// actually shrinks.
pub(crate) fn prune_step(
    conn: &Connection,
    settings: &WriterSettings,
    run: &mut PruneRun,
    now_ms: i64,
    pinned: &HashSet<i64>,
) -> rusqlite::Result<bool> {
    if let Some(days) = settings.retention_days {
        let cutoff = now_ms.saturating_sub(i64::from(days).saturating_mul(MS_PER_DAY));
        let (n, chunks_deleted) = delete_rows(
            conn,
            schema::DELETE_OLDER_THAN,
            params![cutoff, PRUNE_CHUNK],
            pinned,
        )?;
        run.chunks_deleted += chunks_deleted;
        if n > 0 {
            run.deleted += n as u64;
            run.did_work = true;
            return Ok(true);
        }
    }
    if let Some(max) = settings.max_bytes {
        let used = pages(conn)?.used_bytes();
        let target = match run.size_target {
            Some(t) => Some(t),
            None if used > max => Some(max - max / 10),
            None => None,
        };
        run.size_target = target;
        if let Some(target) = target.filter(|&t| used > t) {
            let count: i64 =
                conn.query_row("SELECT count(*) FROM audit_records", [], |r| r.get(0))?;
            if count > 0 {
                let count = count as u64;
                let avg = (used / count).max(1);
                let want = (used - target).div_ceil(avg);
                let n = want.clamp(1, PRUNE_CHUNK as u64).min(count);
                let (n, chunks_deleted) =
                    delete_rows(conn, schema::DELETE_OLDEST, params![n as i64], pinned)?;
                run.deleted += n as u64;
                run.chunks_deleted += chunks_deleted;
                run.did_work = true;
                return Ok(true);
            }
        }
    }
    if let Some(after) = run.sweep_after {
        let tx = conn.unchecked_transaction()?;
        let ids: Vec<i64> = tx
            .prepare_cached(schema::UNREFERENCED_CHUNKS)?
            .query_map(params![after, PRUNE_CHUNK], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut swept = 0;
        for &id in &ids {
            swept += u64::from(chunks::delete_if_unreferenced(&tx, id, pinned)?);
        }
        tx.commit()?;
        run.chunks_deleted += swept;
        run.did_work |= swept > 0;
        run.sweep_after = match ids.last() {
            Some(&last) if ids.len() as i64 == PRUNE_CHUNK => Some(last),
            _ => None,
        };
        if !ids.is_empty() {
            return Ok(true);
        }
    }
    let free = pages(conn)?.freelist_count;
    if free > 0 && run.last_freelist.is_none_or(|last| free < last) {
        run.last_freelist = Some(free);
        let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({VACUUM_CHUNK})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        run.did_work = true;
        return Ok(true);
    }
    if run.did_work {
        // Best effort: a reader holding an old snapshot can keep it from
        // truncating; the next run tries again.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        run.did_work = false;
    }
    Ok(false)
}

/// Run a `DELETE … RETURNING request_chunks, response_chunks` and release
/// the deleted rows' chunks, in one transaction. Returns the rows and the
/// chunks deleted.
fn delete_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    pinned: &HashSet<i64>,
) -> rusqlite::Result<(usize, u64)> {
    let tx = conn.unchecked_transaction()?;
    let mut lists: Vec<Vec<u8>> = Vec::new();
    let mut n = 0;
    {
        let mut stmt = tx.prepare_cached(sql)?;
        let mut rows = stmt.query(params)?;
        while let Some(row) = rows.next()? {
            n += 1;
            for i in 0..2 {
                if let Some(list) = row.get::<_, Option<Vec<u8>>>(i)? {
                    lists.push(list);
                }
            }
        }
    }
    let chunks_deleted = chunks::release_lists(&tx, &lists, pinned)?;
    tx.commit()?;
    Ok((n, chunks_deleted))
}
