//! Bodies on disk: inline when small, else content-defined chunks stored
//! once each under their hash, with reference counts.
//!
//! A coding agent resends its tools, system prompt and whole conversation on
//! every turn, so consecutive request bodies share almost all their bytes.
//! FastCDC cuts a body where its content says (a rolling hash), not at fixed
//! offsets, so an edit or an appended turn changes only the chunks around
//! it and every other chunk is found again by its blake3 hash.
//!
//! Chunk sizes (min / average / max): [`MIN_CHUNK`] 2 KiB /
//! [`AVG_CHUNK`] 8 KiB / [`MAX_CHUNK`] 64 KiB. Each change to a body costs
//! about one average chunk of new bytes on top of the change itself (the
//! chunk the edit falls in is new), so a smaller average saves disk; each
//! chunk costs a row, an index entry, 8 bytes in the record's list and a
//! reference-count update, so a smaller average costs writer CPU. At 8 KiB a
//! 100 KB body is about 13 chunks: a turn that appends a few KB writes
//! ~10–15 KB instead of 100 KB, for a dozen cheap row operations. The 2 KiB
//! minimum keeps JSON's repetitive structure from producing runs of tiny
//! chunks; the 64 KiB maximum bounds one row (and what a reader assembles
//! per step) on content with no natural cut points.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};

use super::prefix::{PrefixCache, Span};
use super::schema::{self, decode_chunk_list, encode_chunk_list};

/// Bodies longer than this are chunked; shorter ones stay inline in their
/// row. Below two average chunks a body is one or two chunks: it could only
/// be shared whole, which small bodies (short prompts, `count_tokens`, error
/// answers) rarely are, while each chunk still costs a hash lookup, two
/// rows and a reference update.
pub(crate) const CHUNK_THRESHOLD: usize = 16 * 1024;
/// Smallest chunk FastCDC cuts (except a body's last).
pub(crate) const MIN_CHUNK: usize = 2 * 1024;
/// Average chunk size FastCDC aims for.
pub(crate) const AVG_CHUNK: usize = 8 * 1024;
/// Largest chunk: a cut is forced here.
pub(crate) const MAX_CHUNK: usize = 64 * 1024;

/// Said in a body's place when one of its chunks is missing from the file
/// (damage or a hand edit; the writer never deletes a referenced chunk).
const MISSING_CHUNK: &[u8] = b"[llm-gateway: audit body chunk missing]";

/// A body as the writer stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoredBody {
    /// The bytes themselves, in the row.
    Inline(Bytes),
    /// The ids of its chunks, in order.
    Chunks(Vec<i64>),
}

impl StoredBody {
    /// The inline column's value: TEXT when the bytes are UTF-8 (friendly to
    /// the `sqlite3` shell), BLOB otherwise (kept byte-exact).
    pub(crate) fn inline_param(&self) -> Option<ToSqlOutput<'_>> {
        match self {
            StoredBody::Inline(b) => {
                Some(ToSqlOutput::Borrowed(if std::str::from_utf8(b).is_ok() {
                    ValueRef::Text(b)
                } else {
                    ValueRef::Blob(b)
                }))
            }
            StoredBody::Chunks(_) => None,
        }
    }

    /// The chunk-list column's value.
    pub(crate) fn chunks_param(&self) -> Option<Vec<u8>> {
        match self {
            StoredBody::Inline(_) => None,
            StoredBody::Chunks(ids) => Some(encode_chunk_list(ids)),
        }
    }
}

/// Split `body` into chunks and store the ones the file does not have yet
/// (with `refs = 0`); returns the chunk ids in order. References are the
/// caller's to add, once the row that lists them is written.
pub(crate) fn store_chunks(conn: &Connection, body: &[u8]) -> rusqlite::Result<Vec<i64>> {
    let mut spans = Vec::with_capacity(body.len() / AVG_CHUNK + 1);
    store_from(conn, body, 0, &mut spans)?;
    Ok(spans.iter().map(|s| s.id).collect())
}

/// [`store_chunks`], taking the leading chunks `body` shares with a body
/// `cache` holds instead of chunking, hashing and looking them up again,
/// and keeping `body` in `cache` (tentatively: the caller commits or rolls
/// back the cache with its transaction). Same result as [`store_chunks`];
/// see [`super::prefix`].
pub(crate) fn store_chunks_cached(
    conn: &Connection,
    body: &Bytes,
    cache: &mut PrefixCache,
) -> rusqlite::Result<Vec<i64>> {
    Ok(store_spans_cached(conn, body, cache)?
        .iter()
        .map(|s| s.id)
        .collect())
}

/// [`store_chunks_cached`], returning where each chunk lies.
pub(crate) fn store_spans_cached(
    conn: &Connection,
    body: &Bytes,
    cache: &mut PrefixCache,
) -> rusqlite::Result<Vec<Span>> {
    let Some(key) = PrefixCache::key(body) else {
        let mut spans = Vec::new();
        store_from(conn, body, 0, &mut spans)?;
        return Ok(spans);
    };
    let hit = cache.find(key, body);
    let (mut spans, restart) = match &hit {
        Some(hit) => (hit.spans.clone(), hit.restart),
        None => (Vec::new(), 0),
    };
    spans.reserve((body.len() - restart) / AVG_CHUNK + 1);
    store_from(conn, body, restart, &mut spans)?;
    cache.remember(key, body.clone(), spans.clone(), hit.as_ref());
    Ok(spans)
}

/// Chunk `body[from..]` (`from` being a cut of the whole body, or 0), store
/// the chunks the file does not have yet and append them to `spans`, with
/// offsets in `body`.
fn store_from(
    conn: &Connection,
    body: &[u8],
    from: usize,
    spans: &mut Vec<Span>,
) -> rusqlite::Result<()> {
    let mut find = conn.prepare_cached(schema::FIND_CHUNK)?;
    let mut insert = conn.prepare_cached(schema::INSERT_CHUNK)?;
    let mut insert_data = conn.prepare_cached(schema::INSERT_CHUNK_DATA)?;
    let rest = &body[from..];
    for chunk in fastcdc::v2020::FastCDC::new(rest, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
        let bytes = &rest[chunk.offset..chunk.offset + chunk.length];
        let hash = blake3::hash(bytes);
        let hash = hash.as_bytes().as_slice();
        let id = match find.query_row([hash], |r| r.get::<_, i64>(0)).optional()? {
            Some(id) => id,
            None => {
                insert.execute(params![hash, bytes.len() as i64])?;
                let id = conn.last_insert_rowid();
                insert_data.execute(params![id, bytes])?;
                id
            }
        };
        spans.push(Span {
            offset: from + chunk.offset,
            len: chunk.length,
            id,
        });
    }
    Ok(())
}

/// Count each chunk in a stored list into `deltas` with weight `by`.
pub(crate) fn count_refs(list: &[i64], by: i64, deltas: &mut HashMap<i64, i64>) {
    for &id in list {
        *deltas.entry(id).or_default() += by;
    }
}

/// Apply reference changes, one UPDATE per distinct chunk.
pub(crate) fn apply_refs(conn: &Connection, deltas: &HashMap<i64, i64>) -> rusqlite::Result<()> {
    let mut update = conn.prepare_cached(schema::ADD_CHUNK_REFS)?;
    for (&id, &delta) in deltas {
        if delta != 0 {
            update.execute(params![id, delta])?;
        }
    }
    Ok(())
}

/// Delete chunk `id` if nothing references it and the writer does not hold
/// it (`pinned`: chunks of staged bodies whose records have not come yet).
/// Returns whether it was deleted.
pub(crate) fn delete_if_unreferenced(
    conn: &Connection,
    id: i64,
    pinned: &HashSet<i64>,
) -> rusqlite::Result<bool> {
    if pinned.contains(&id) {
        return Ok(false);
    }
    let mut delete = conn.prepare_cached(schema::DELETE_CHUNK)?;
    if delete.execute([id])? == 0 {
        return Ok(false);
    }
    conn.prepare_cached(schema::DELETE_CHUNK_DATA)?
        .execute([id])?;
    Ok(true)
}

/// Release the references of deleted rows' chunk lists (the `RETURNING`
/// columns of a delete) and delete the chunks nobody refers to any more.
/// Returns how many chunks were deleted.
pub(crate) fn release_lists(
    conn: &Connection,
    lists: &[Vec<u8>],
    pinned: &HashSet<i64>,
) -> rusqlite::Result<u64> {
    let mut deltas = HashMap::new();
    for list in lists {
        for id in decode_chunk_list(list) {
            *deltas.entry(id).or_insert(0) -= 1;
        }
    }
    apply_refs(conn, &deltas)?;
    let mut deleted = 0;
    for &id in deltas.keys() {
        deleted += u64::from(delete_if_unreferenced(conn, id, pinned)?);
    }
    Ok(deleted)
}

/// Reassemble a body from its stored chunk list.
pub(crate) fn read_chunks(conn: &Connection, list: &[u8]) -> rusqlite::Result<Bytes> {
    let mut read = conn.prepare_cached(schema::READ_CHUNK)?;
    let mut body = Vec::new();
    for id in decode_chunk_list(list) {
        let found = read
            .query_row([id], |r| {
                if let ValueRef::Blob(b) | ValueRef::Text(b) = r.get_ref(0)? {
                    body.extend_from_slice(b);
                }
                Ok(())
            })
            .optional()?;
        if found.is_none() {
            body.extend_from_slice(MISSING_CHUNK);
        }
    }
    Ok(Bytes::from(body))
}

/// A stored body column (TEXT or BLOB) as bytes.
pub(crate) fn column_bytes(value: ValueRef<'_>) -> Option<Bytes> {
    match value {
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(Bytes::copy_from_slice(b)),
        _ => None,
    }
}
