//! The writer's cache of recently chunked request bodies, so a body that
//! begins like one it just stored skips chunking and hashing that beginning.
//!
//! A coding agent resends its tools, system prompt and whole conversation on
//! every turn: each request body is the previous one plus a few KB. Chunking
//! it from scratch re-runs FastCDC and blake3 over ~100 KB and looks every
//! chunk up in SQLite, only to find them all there. The cache keeps, for a
//! few recent bodies, the bytes and the chunk list (offset, length, id); a
//! new body that shares a prefix with one of them takes that body's chunks
//! lying inside the shared prefix as they are, and FastCDC runs only from the
//! end of the last chunk taken.
//!
//! # Why the result is what chunking the whole body gives
//!
//! FastCDC v2020 (as the `fastcdc` crate implements it) finds a chunk's end
//! by scanning from the chunk's start: it resets its rolling hash there and
//! tests candidate cut positions two bytes at a time. The cut it reports
//! depends on the bytes from the chunk's start up to **and including** the
//! byte at the cut (a cut "at `c`" is decided after hashing byte `c`, which
//! is the next chunk's first byte), and on how much of the source is left
//! (the scan window is `min(remaining, MAX_CHUNK)`; the switch from the
//! strict to the loose mask happens at `min(AVG_CHUNK, window)`). Take a
//! cached body `X` chunked whole, a new body `Y`, and `L` the length of
//! their common prefix. For a chunk `[s, e)` of `X`, with `Y` chunked
//! identically up to `s`:
//!
//! - if `e + 1 < L`, the bytes `Y[s..=e]` are `X`'s; `Y` has at least two
//!   bytes past `e - 1`, so its scan window reaches the candidate pair that
//!   holds `e` (a window one byte short of a complete pair would not test
//!   it, and a window ending at `e` would force a cut there); the mask for
//!   every candidate both scans is the same (a candidate is tested with the
//!   loose mask only past `AVG_CHUNK`, and then only when the window is
//!   larger than that in both). So `Y`'s cut from `s` is `e` too, whether
//!   `X`'s was a content cut or the `MAX_CHUNK` limit (`e` is then not `X`'s
//!   end, since `e < L <= len(X)`).
//! - a chunk that ends at `X`'s end (forced by the end of the data) always
//!   has `e >= L` and is never taken.
//!
//! By induction from `s = 0`, every chunk of `X` with `e + 1 < L` is a chunk
//! of `Y`, and chunking `Y[restart..]` (restart = the end of the last one
//! taken) yields exactly the rest of `Y`'s chunks: FastCDC over a slice
//! that begins at a cut of the whole is the whole's chunking from there on.
//! The property test in `tests` checks this against chunking every body
//! whole.
//!
//! # Finding the cached body
//!
//! Entries are keyed by a hash of their first [`KEY_LEN`] bytes (a body
//! shorter than that is neither looked up nor kept: no chunk could be taken
//! anyway). Several entries may share a key — all conversations of one agent
//! start with the same tools and system prompt — so each candidate is first
//! given an upper bound on its common prefix from [`PROBE_LEN`]-byte probes
//! every [`PROBE_STRIDE`] bytes (a mismatch in a probe bounds the prefix);
//! then candidates are compared exactly (slice equality, i.e. `memcmp`) in
//! order of their bound until no remaining bound exceeds the best exact
//! length by more than one probe stride (a candidate that could win by less
//! than 4 KiB would save at most about one chunk, not worth another full
//! comparison). Usually that is one full comparison.
//!
//! # Bounds and memory
//!
//! At most [`MAX_ENTRIES`] bodies and [`MAX_BYTES`] of their bytes, least
//! recently used evicted first; at most [`MAX_PER_KEY`] entries share a key;
//! a body over [`MAX_BODY`] is not kept. An entry holds a `Bytes` clone of
//! the body: no copy, but it keeps the body's buffer alive (the whole
//! buffer, if the `Bytes` is a slice of a larger one) after its record is
//! written, which is what the cache costs in memory — at most about
//! [`MAX_BYTES`], plus 24 bytes per chunk for the lists.
//!
//! A new body that shares all but at most the last [`SUPERSEDE_SLACK`] bytes
//! of the entry it used replaces it: the next turn of a conversation
//! replaces the previous one (which it contains, but for the JSON that
//! closes the body), so a conversation holds one entry. Bodies that share
//! less (two conversations that start alike, or one prefix with many
//! different tails) are kept side by side, at most [`MAX_PER_KEY`] per key.
//!
//! # Chunk ids the cache may hand out
//!
//! A cached id must name a chunk that exists and holds those bytes. Two
//! things could break that, and the writer handles both:
//!
//! - a failed (rolled back) transaction un-inserts its new chunks, and
//!   SQLite may give their ids to other chunks later: entries remembered
//!   during a transaction are *tentative* until [`PrefixCache::commit`];
//!   [`PrefixCache::rollback`] drops them.
//! - retention deletes unreferenced chunks: the writer calls
//!   [`PrefixCache::clear`] after any prune step that deleted a chunk (or
//!   failed).

use bytes::Bytes;

use super::chunks::MIN_CHUNK;

/// Entries kept at most.
pub(crate) const MAX_ENTRIES: usize = 64;
/// Body bytes kept at most (the entries' `Bytes`).
pub(crate) const MAX_BYTES: usize = 16 * 1024 * 1024;
/// A body larger than this is not kept (it would push out many others).
pub(crate) const MAX_BODY: usize = MAX_BYTES / 4;
/// Entries sharing one key at most (bounds the comparisons per lookup).
pub(crate) const MAX_PER_KEY: usize = 16;
/// Bytes at a body's start that its key hashes: one minimum chunk, so no
/// chunk could be taken from a body that does not share them.
pub(crate) const KEY_LEN: usize = MIN_CHUNK;
/// Distance between the probes that bound a candidate's common prefix.
const PROBE_STRIDE: usize = 4 * 1024;
/// Bytes compared per probe.
const PROBE_LEN: usize = 32;
/// A new body replaces the entry it used when their common prefix covers
/// all of that entry but at most this many bytes (room for the fields that
/// follow a request's `messages` array): a later body that would have
/// matched the old entry further loses at most this much of its match.
const SUPERSEDE_SLACK: usize = 1024;

/// One chunk of a body: where it lies in the body and its row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Offset of the chunk's first byte in the body.
    pub(crate) offset: usize,
    /// The chunk's length.
    pub(crate) len: usize,
    /// The chunk's id in `audit_chunks`.
    pub(crate) id: i64,
}

impl Span {
    /// Offset just past the chunk.
    pub(crate) fn end(&self) -> usize {
        self.offset + self.len
    }
}

/// What a lookup found: the chunks to take and where to resume chunking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    /// The leading chunks of the new body, taken from the cached one.
    pub(crate) spans: Vec<Span>,
    /// Offset from which the rest of the body must be chunked (the end of
    /// the last span taken; 0 if none).
    pub(crate) restart: usize,
    /// Length of the common prefix with the cached body.
    pub(crate) prefix: usize,
    /// The entry the new body should replace once stored, if it covers it.
    supersedes: Option<u64>,
}

/// One cached body.
#[derive(Debug)]
struct Entry {
    /// Unique within the cache (survives reordering of `entries`).
    id: u64,
    key: u64,
    body: Bytes,
    spans: Vec<Span>,
    last_used: u64,
    /// Remembered in the transaction still open: its new chunks are not
    /// committed yet.
    tentative: bool,
}

/// The writer's cache of recently chunked bodies (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct PrefixCache {
    entries: Vec<Entry>,
    bytes: usize,
    clock: u64,
    next_id: u64,
}

impl PrefixCache {
    /// An empty cache.
    pub(crate) fn new() -> PrefixCache {
        PrefixCache::default()
    }

    /// The key of `body`, or `None` when it is too short to use the cache.
    pub(crate) fn key(body: &[u8]) -> Option<u64> {
        let head = body.get(..KEY_LEN)?;
        let hash = blake3::hash(head);
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        Some(u64::from_le_bytes(first))
    }

    /// Find the cached body (with key `key`, which is `body`'s) sharing the
    /// longest prefix with `body`, and the chunks of it that are chunks of
    /// `body` too. Marks the entry used.
    pub(crate) fn find(&mut self, key: u64, body: &[u8]) -> Option<Hit> {
        let mut candidates: Vec<(usize, usize)> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.key == key)
            .map(|(i, e)| (probe_bound(body, &e.body), i))
            .collect();
        // Highest bound first; among equals, the most recently used.
        candidates.sort_unstable_by(|a, b| {
            b.0.cmp(&a.0).then_with(|| {
                self.entries[b.1]
                    .last_used
                    .cmp(&self.entries[a.1].last_used)
            })
        });
        let mut best: Option<(usize, usize)> = None;
        for (bound, i) in candidates {
            // Sorted by bound: no later candidate can do better by more
            // than a stride either.
            if best.is_some_and(|(len, _)| len + PROBE_STRIDE >= bound) {
                break;
            }
            let len = common_prefix(&body[..bound], &self.entries[i].body[..bound]);
            if best.is_none_or(|(best_len, _)| len > best_len) {
                best = Some((len, i));
            }
        }
        let (prefix, i) = best?;
        self.clock += 1;
        let entry = &mut self.entries[i];
        entry.last_used = self.clock;
        // `e + 1 < L`: see the module docs.
        let taken = entry.spans.partition_point(|s| s.end() + 1 < prefix);
        let spans = entry.spans[..taken].to_vec();
        Some(Hit {
            restart: spans.last().map_or(0, Span::end),
            spans,
            prefix,
            supersedes: (prefix + SUPERSEDE_SLACK >= entry.body.len()).then_some(entry.id),
        })
    }

    /// Keep `body` (key `key`) with its chunk list, tentatively until
    /// [`commit`](Self::commit). `replaces` is the entry [`find`](Self::find)
    /// said it supersedes. Evicts past the bounds, least recently used
    /// first.
    pub(crate) fn remember(&mut self, key: u64, body: Bytes, spans: Vec<Span>, hit: Option<&Hit>) {
        if let Some(id) = hit.and_then(|h| h.supersedes) {
            if let Some(i) = self.entries.iter().position(|e| e.id == id) {
                self.remove(i);
            }
        }
        if body.len() > MAX_BODY {
            return;
        }
        self.clock += 1;
        self.next_id += 1;
        self.bytes += body.len();
        self.entries.push(Entry {
            id: self.next_id,
            key,
            body,
            spans,
            last_used: self.clock,
            tentative: true,
        });
        while self.entries.iter().filter(|e| e.key == key).count() > MAX_PER_KEY {
            self.evict(|e| e.key == key);
        }
        while self.entries.len() > MAX_ENTRIES || self.bytes > MAX_BYTES {
            self.evict(|_| true);
        }
    }

    /// The transaction the tentative entries were remembered in committed:
    /// their chunks exist for good (until retention deletes them).
    pub(crate) fn commit(&mut self) {
        for e in &mut self.entries {
            e.tentative = false;
        }
    }

    /// The transaction rolled back: forget the entries remembered in it,
    /// whose new chunk ids no longer exist (and may be reused).
    pub(crate) fn rollback(&mut self) {
        self.entries.retain(|e| !e.tentative);
        self.bytes = self.entries.iter().map(|e| e.body.len()).sum();
    }

    /// Forget everything (retention deleted chunks some entry may list).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Body bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, i: usize) {
        let e = self.entries.swap_remove(i);
        self.bytes -= e.body.len();
    }

    /// Remove the least recently used entry among those `which` selects.
    fn evict(&mut self, which: impl Fn(&Entry) -> bool) {
        let oldest = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| which(e))
            .min_by_key(|(_, e)| e.last_used)
            .map(|(i, _)| i);
        if let Some(i) = oldest {
            self.remove(i);
        }
    }
}

/// An upper bound on the common prefix of `a` and `b`, from a few probes:
/// the end of the first probe that differs, else the shorter length.
fn probe_bound(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut p = 0;
    while p < n {
        let end = (p + PROBE_LEN).min(n);
        if a[p..end] != b[p..end] {
            return end;
        }
        p += PROBE_STRIDE;
    }
    n
}

/// Length of the common prefix of `a` and `b`: equality of 4 KiB blocks,
/// then of 64-byte blocks, then bytes (slice equality is a `memcmp`).
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    for block in [4096, 64] {
        while i + block <= n && a[i..i + block] == b[i..i + block] {
            i += block;
        }
    }
    i + a[i..]
        .iter()
        .zip(&b[i..])
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chunks::{
        read_chunks, store_chunks, store_spans_cached, AVG_CHUNK, MAX_CHUNK,
    };
    use crate::audit::schema::{self, encode_chunk_list};
    use proptest::prelude::*;
    use rusqlite::Connection;

    /// Deterministic content of three kinds: 0 random bytes, 1 text from a
    /// small vocabulary (cuts where text puts them), 2 long zero runs with
    /// rare noise (forces `MAX_CHUNK` cuts and long equal stretches).
    fn content(seed: u64, len: usize, kind: u8) -> Vec<u8> {
        const WORDS: [&[u8]; 8] = [
            b"the ",
            b"tool ",
            b"returns ",
            b"{\"role\":",
            b"file ",
            b"\\n",
            b"fn ",
            b"main ",
        ];
        let mut x = (seed ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            match kind % 3 {
                0 => out.extend_from_slice(&next().to_le_bytes()),
                1 => out.extend_from_slice(WORDS[(next() >> 61) as usize]),
                _ => {
                    let r = next();
                    if r % 64 == 0 {
                        out.extend_from_slice(&r.to_le_bytes());
                    } else {
                        out.extend_from_slice(&[0; 512]);
                    }
                }
            }
        }
        out.truncate(len);
        out
    }

    /// A fresh store with a transaction open (no fsync per chunk).
    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = schema::open_writer(&dir.path().join("a.db")).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        (dir, conn)
    }

    /// Where chunking `body` whole cuts it.
    fn whole(body: &[u8]) -> Vec<(usize, usize)> {
        fastcdc::v2020::FastCDC::new(body, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
            .map(|c| (c.offset, c.length))
            .collect()
    }

    /// Store `body` through the cache and check it against chunking it
    /// whole: same boundaries, same ids as the uncached path (which finds
    /// every chunk by its hash), and the list reads back byte-exact.
    /// Returns how many leading chunks the cache supplied.
    fn check(conn: &Connection, cache: &mut PrefixCache, body: &Bytes) -> usize {
        let hit_spans = PrefixCache::key(body)
            .and_then(|key| cache.find(key, body))
            .map_or(0, |h| h.spans.len());
        let spans = store_spans_cached(conn, body, cache).unwrap();
        cache.commit();
        let got: Vec<(usize, usize)> = spans.iter().map(|s| (s.offset, s.len)).collect();
        assert_eq!(got, whole(body), "boundaries, body of {} bytes", body.len());
        let ids: Vec<i64> = spans.iter().map(|s| s.id).collect();
        assert_eq!(ids, store_chunks(conn, body).unwrap(), "ids");
        let back = read_chunks(conn, &encode_chunk_list(&ids)).unwrap();
        assert!(back == body[..], "read back differs");
        hit_spans
    }

    /// How a derived body is made from an earlier one.
    #[derive(Debug, Clone)]
    struct Derive {
        parent: usize,
        /// Where the shared prefix ends: near one of the parent's chunk
        /// ends (`Some(delta)`, the chunk picked by `pick`) or anywhere
        /// (`None`, `pick` modulo the parent's length + 1).
        near_end: Option<i64>,
        pick: usize,
        tail_len: usize,
        tail_seed: u64,
        tail_kind: u8,
    }

    fn derive() -> impl Strategy<Value = Derive> {
        (
            any::<usize>(),
            prop_oneof![Just(None), (-3i64..=3).prop_map(Some)],
            any::<usize>(),
            prop_oneof![Just(0usize), 1usize..64, 64usize..40_000],
            any::<u64>(),
            0u8..3,
        )
            .prop_map(
                |(parent, near_end, pick, tail_len, tail_seed, tail_kind)| Derive {
                    parent,
                    near_end,
                    pick,
                    tail_len,
                    tail_seed,
                    tail_kind,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Bodies sharing random-length prefixes with cached ones (cut at
        /// random or within a few bytes of a cached chunk's end, followed by
        /// a random tail or nothing) are chunked exactly as if whole, with
        /// the same ids, and read back byte-exact.
        #[test]
        fn cached_path_equals_whole_chunking(
            seed in any::<u64>(),
            base_len in 0usize..200_000,
            kind in 0u8..3,
            steps in prop::collection::vec(derive(), 1..7),
        ) {
            let (_dir, conn) = db();
            let mut cache = PrefixCache::new();
            let mut bodies = vec![Bytes::from(content(seed, base_len, kind))];
            check(&conn, &mut cache, &bodies[0]);
            for d in steps {
                let parent = &bodies[d.parent % bodies.len()];
                let cut = match d.near_end {
                    None => d.pick % (parent.len() + 1),
                    Some(delta) => {
                        let ends: Vec<usize> = whole(parent).iter().map(|&(o, l)| o + l).collect();
                        match ends.get(d.pick % ends.len().max(1)) {
                            Some(&e) => (e as i64 + delta).clamp(0, parent.len() as i64) as usize,
                            None => 0,
                        }
                    }
                };
                let mut body = parent[..cut].to_vec();
                body.extend_from_slice(&content(d.tail_seed, d.tail_len, d.tail_kind));
                let body = Bytes::from(body);
                check(&conn, &mut cache, &body);
                bodies.push(body);
            }
        }

        /// `common_prefix` and `probe_bound` agree with a byte-by-byte count.
        #[test]
        fn common_prefix_is_exact(
            seed in any::<u64>(),
            len in 0usize..20_000,
            at in any::<usize>(),
            other_len in 0usize..20_000,
        ) {
            let a = content(seed, len, 0);
            let mut b = content(seed, other_len, 0);
            if !b.is_empty() {
                let i = at % b.len();
                b[i] = b[i].wrapping_add(1);
            }
            let naive = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
            prop_assert_eq!(common_prefix(&a, &b), naive);
            prop_assert!(probe_bound(&a, &b) >= naive);
        }
    }

    /// Prefixes ending at, just before and just after every chunk end of a
    /// cached body: the cases where taking one chunk too many would change
    /// the result (a cut is decided by the byte after it; a window one byte
    /// short of a pair does not test it).
    #[test]
    fn prefixes_around_every_chunk_end() {
        let (_dir, conn) = db();
        for kind in 0..3 {
            let x = Bytes::from(content(99 + u64::from(kind), 150_000, kind));
            let ends: Vec<usize> = whole(&x).iter().map(|&(o, l)| o + l).collect();
            let mut reused_any = false;
            for &e in &ends {
                for delta in -3i64..=3 {
                    let cut = (e as i64 + delta).clamp(0, x.len() as i64) as usize;
                    for tail in [&b""[..], b"\xff", &content(7, 5_000, kind)[..]] {
                        let mut cache = PrefixCache::new();
                        check(&conn, &mut cache, &x);
                        let mut y = x[..cut].to_vec();
                        y.extend_from_slice(tail);
                        reused_any |= check(&conn, &mut cache, &Bytes::from(y)) > 0;
                    }
                }
            }
            assert!(reused_any, "kind {kind}: the cache was never used");
        }
    }

    #[test]
    fn a_growing_conversation_rechunks_only_its_end() {
        let (_dir, conn) = db();
        let mut cache = PrefixCache::new();
        let mut body = content(1, 60_000, 1);
        for turn in 0..20 {
            let b = Bytes::from(body.clone());
            let reused = check(&conn, &mut cache, &b);
            if turn > 0 {
                let total = whole(&b).len();
                assert!(reused + 3 >= total, "turn {turn}: {reused} of {total}");
            }
            body.extend_from_slice(&content(100 + turn, 2_000, 1));
        }
        assert_eq!(cache.len(), 1, "each turn replaced the previous one");
    }

    #[test]
    fn interleaved_conversations_each_keep_their_entry() {
        let (_dir, conn) = db();
        let mut cache = PrefixCache::new();
        let shared = content(5, 40_000, 1);
        let mut convs: Vec<Vec<u8>> = (0..8)
            .map(|c| {
                let mut b = shared.clone();
                b.extend_from_slice(&content(50 + c, 3_000, 1));
                b
            })
            .collect();
        for round in 0..6 {
            for (c, conv) in convs.iter_mut().enumerate() {
                let b = Bytes::from(conv.clone());
                let reused = check(&conn, &mut cache, &b);
                if round > 0 {
                    // Its own previous turn, not another conversation's
                    // 40 KB: nearly every chunk.
                    let total = whole(&b).len();
                    assert!(
                        reused + 3 >= total,
                        "conv {c} round {round}: {reused}/{total}"
                    );
                }
                conv.extend_from_slice(&content(1000 + round * 10 + c as u64, 2_000, 1));
            }
        }
        assert_eq!(cache.len(), 8);
    }

    #[test]
    fn bounds_hold_and_lru_goes_first() {
        let mut cache = PrefixCache::new();
        for i in 0..200u64 {
            let body = Bytes::from(content(i, 300_000, 0));
            let key = PrefixCache::key(&body).unwrap();
            cache.remember(key, body, Vec::new(), None);
            cache.commit();
            assert!(cache.len() <= MAX_ENTRIES);
            assert!(cache.bytes() <= MAX_BYTES);
        }
        assert_eq!(cache.len(), MAX_BYTES / 300_000);
        // Same key for all: at most MAX_PER_KEY kept.
        cache.clear();
        let head = content(1, KEY_LEN, 0);
        for i in 0..40u64 {
            let mut body = head.clone();
            body.extend_from_slice(&content(i, 10_000, 0));
            let body = Bytes::from(body);
            let key = PrefixCache::key(&body).unwrap();
            cache.remember(key, body, Vec::new(), None);
        }
        assert_eq!(cache.len(), MAX_PER_KEY);
        // Too large to keep.
        let big = Bytes::from(vec![1u8; MAX_BODY + 1]);
        let key = PrefixCache::key(&big).unwrap();
        cache.clear();
        cache.remember(key, big, Vec::new(), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn rollback_forgets_what_the_transaction_remembered() {
        let mut cache = PrefixCache::new();
        let a = Bytes::from(content(1, 50_000, 1));
        let b = Bytes::from(content(2, 50_000, 1));
        let span = |id| {
            vec![Span {
                offset: 0,
                len: 50_000,
                id,
            }]
        };
        cache.remember(PrefixCache::key(&a).unwrap(), a.clone(), span(1), None);
        cache.commit();
        cache.remember(PrefixCache::key(&b).unwrap(), b.clone(), span(2), None);
        cache.rollback();
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), a.len());
        assert!(cache.find(PrefixCache::key(&b).unwrap(), &b).is_none());
        assert!(cache.find(PrefixCache::key(&a).unwrap(), &a).is_some());
    }
}
