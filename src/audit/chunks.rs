//! Bodies on disk: content-defined chunks, each stored once under its hash,
//! zstd-compressed.
//!
//! A coding agent resends its tools, system prompt and whole conversation on
//! every turn. FastCDC cuts a body where its content says (a rolling hash),
//! so an edit or an appended turn changes only the chunks around it and every
//! other chunk is found again by its blake3 hash; only a new chunk is
//! compressed and written. Sizes: 2 KiB min, 8 KiB average (each change costs
//! about one average chunk of new bytes; each chunk a lookup), 64 KiB max.
//!
//! A chunk is deleted only by [`sweep`], which keeps every chunk some row
//! still lists: freeing needs no reference counts, and a crash (every write
//! is one transaction) leaves nothing half-done.

use std::collections::HashSet;

use bytes::Bytes;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension};

use super::schema::{decode_chunk_list, encode_chunk_list};

/// Smallest chunk FastCDC cuts (except a body's last).
pub(crate) const MIN_CHUNK: usize = 2 * 1024;
/// Average chunk size FastCDC aims for.
pub(crate) const AVG_CHUNK: usize = 8 * 1024;
/// Largest chunk: a cut is forced here.
pub(crate) const MAX_CHUNK: usize = 64 * 1024;
/// zstd level of stored chunks: zstd's default, a good ratio on JSON and SSE
/// text for little CPU, and only new chunks are compressed.
const ZSTD_LEVEL: i32 = 3;

/// Said in a body's place when one of its chunks is missing or damaged (a
/// hand edit; the writer never deletes a listed chunk).
const MISSING_CHUNK: &[u8] = b"[llm-gateway: audit body chunk missing]";

/// Writes bodies as chunk lists. Holds a zstd context, reused for every
/// chunk; lives on the writer thread.
pub(crate) struct ChunkWriter {
    compressor: zstd::bulk::Compressor<'static>,
}

impl ChunkWriter {
    pub(crate) fn new() -> std::io::Result<ChunkWriter> {
        Ok(ChunkWriter {
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
        })
    }

    /// Store the chunks of `body` the file does not have yet; returns the
    /// row's chunk list. Runs inside the caller's transaction.
    pub(crate) fn store(&mut self, conn: &Connection, body: &[u8]) -> rusqlite::Result<Vec<u8>> {
        let mut find = conn.prepare_cached("SELECT id FROM audit_chunks WHERE hash = ?1")?;
        let mut insert =
            conn.prepare_cached("INSERT INTO audit_chunks (hash, data) VALUES (?1, ?2)")?;
        let mut ids = Vec::with_capacity(body.len() / AVG_CHUNK + 1);
        for chunk in fastcdc::v2020::FastCDC::new(body, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
            let bytes = &body[chunk.offset..chunk.offset + chunk.length];
            let hash = blake3::hash(bytes);
            let hash = hash.as_bytes().as_slice();
            let id = match find.query_row([hash], |r| r.get(0)).optional()? {
                Some(id) => id,
                None => {
                    let data = self
                        .compressor
                        .compress(bytes)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    insert.execute(params![hash, data])?;
                    conn.last_insert_rowid()
                }
            };
            ids.push(id);
        }
        Ok(encode_chunk_list(&ids))
    }
}

/// Reassemble a body from its chunk list, byte-exact.
pub(crate) fn read_body(conn: &Connection, list: &[u8]) -> rusqlite::Result<Bytes> {
    let mut read = conn.prepare_cached("SELECT data FROM audit_chunks WHERE id = ?1")?;
    let mut body = Vec::new();
    for id in decode_chunk_list(list) {
        let data: Option<Vec<u8>> = read.query_row([id], |r| r.get(0)).optional()?;
        match data.map(|d| zstd::bulk::decompress(&d, MAX_CHUNK)) {
            Some(Ok(bytes)) => body.extend_from_slice(&bytes),
            _ => body.extend_from_slice(MISSING_CHUNK),
        }
    }
    Ok(Bytes::from(body))
}

/// Delete every chunk no row lists (after rows were deleted); returns how
/// many. Reads every row's lists: run it after retention deleted rows, not
/// per commit.
pub(crate) fn sweep(conn: &Connection) -> rusqlite::Result<u64> {
    let tx = conn.unchecked_transaction()?;
    let deleted = sweep_in(&tx)?;
    tx.commit()?;
    Ok(deleted)
}

fn sweep_in(conn: &Connection) -> rusqlite::Result<u64> {
    let mut listed = HashSet::new();
    let mut rows = conn.prepare("SELECT request_body, response_body FROM audit_records")?;
    let mut rows = rows.query([])?;
    while let Some(row) = rows.next()? {
        for i in 0..2 {
            if let ValueRef::Blob(list) = row.get_ref(i)? {
                listed.extend(decode_chunk_list(list));
            }
        }
    }
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM audit_chunks")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut delete = conn.prepare_cached("DELETE FROM audit_chunks WHERE id = ?1")?;
    let mut deleted = 0;
    for id in ids.into_iter().filter(|id| !listed.contains(id)) {
        deleted += delete.execute([id])? as u64;
    }
    Ok(deleted)
}
