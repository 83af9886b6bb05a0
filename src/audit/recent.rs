//! [`RecentBodies`]: staged request bodies travel as "a recent body's prefix plus
//! a new tail", so the queue to the writer does not hold 100 KB per request.
//!
//! A coding agent's request repeats the previous one's tools, system prompt and
//! conversation, and adds a turn at the end. The writer runs only on idle CPU, so
//! during a burst staged bodies wait in its queue; held whole, 2,000 waiting
//! Claude Code requests were 200 MB. Held as a slice of a recent body (shared, no
//! copy) plus the few KB that differ, they are a few MB, and each request's own
//! buffer is freed as soon as the request has gone upstream. The body a prefix is
//! cut from stays the source for the bodies after it until their tails outgrow
//! [`REFRESH_TAIL`]: cut from each predecessor instead, the queued messages would
//! keep one another's buffers alive in a chain.
//!
//! The cost on the request path is one comparison of the body with a few recent
//! ones: their first bytes first, then a `memcmp` of the common part (~5 µs for
//! 100 KB); the writer joins the two parts when it takes the body.

use bytes::Bytes;

/// Bodies remembered; each is one live request buffer (~100 KB for Claude Code).
const SLOTS: usize = 8;
/// A shared prefix shorter than this is not worth a split: the body goes whole.
const MIN_SHARED: usize = 16 * 1024;
/// A tail longer than this makes the new body the source for the next ones.
const REFRESH_TAIL: usize = 16 * 1024;
/// Bytes compared first, to rule a candidate out cheaply.
const PROBE: usize = 256;

/// A staged body as it goes to the writer: `prefix` (a slice of an earlier body)
/// followed by `tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitBody {
    pub(crate) prefix: Bytes,
    pub(crate) tail: Bytes,
}

impl SplitBody {
    /// The body in one piece.
    pub(crate) fn join(self) -> Bytes {
        if self.prefix.is_empty() {
            return self.tail;
        }
        let mut whole = bytes::BytesMut::with_capacity(self.prefix.len() + self.tail.len());
        whole.extend_from_slice(&self.prefix);
        whole.extend_from_slice(&self.tail);
        whole.freeze()
    }
}

/// The last few staged bodies (most recent first).
#[derive(Debug, Default)]
pub(crate) struct RecentBodies {
    slots: Vec<Bytes>,
}

impl RecentBodies {
    /// Split `body` against the recent body it shares the longest prefix with, and
    /// remember `body` in that one's place (or in a new slot).
    pub(crate) fn split(&mut self, body: Bytes) -> SplitBody {
        let best = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, old)| probe_matches(old, &body))
            .map(|(i, old)| (i, common_prefix(old, &body)))
            .max_by_key(|&(_, shared)| shared);
        match best {
            Some((i, shared)) if shared >= MIN_SHARED => {
                let source = self.slots.remove(i);
                let tail = Bytes::copy_from_slice(&body[shared..]);
                // The source stays while bodies differ from it by little, so queued
                // messages share one buffer, not each its predecessor's (a chain
                // that would keep every queued body alive). Once the tails grow,
                // the newer body takes its place: one slot a conversation.
                self.slots.insert(
                    0,
                    if tail.len() > REFRESH_TAIL {
                        body
                    } else {
                        source.clone()
                    },
                );
                SplitBody {
                    prefix: source.slice(..shared),
                    tail,
                }
            }
            _ => {
                if body.len() >= MIN_SHARED {
                    if self.slots.len() == SLOTS {
                        self.slots.pop();
                    }
                    self.slots.insert(0, body.clone());
                }
                SplitBody {
                    prefix: Bytes::new(),
                    tail: body,
                }
            }
        }
    }
}

fn probe_matches(old: &[u8], new: &[u8]) -> bool {
    let n = PROBE.min(old.len()).min(new.len());
    n > 0 && old[..n] == new[..n]
}

/// Length of the common prefix: equal blocks compared at once, then bytes.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 4096;
    let n = a.len().min(b.len());
    let mut at = 0;
    while at + BLOCK <= n && a[at..at + BLOCK] == b[at..at + BLOCK] {
        at += BLOCK;
    }
    at + a[at..n]
        .iter()
        .zip(&b[at..n])
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body(prefix: &[u8], tail: &[u8]) -> Bytes {
        let mut v = prefix.to_vec();
        v.extend_from_slice(tail);
        Bytes::from(v)
    }

    #[test]
    fn a_body_continuing_a_recent_one_goes_as_its_prefix_plus_the_new_tail() {
        let shared: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut recent = RecentBodies::default();
        let first = body(&shared, b"turn one");
        let split = recent.split(first.clone());
        assert!(split.prefix.is_empty(), "nothing to share with yet");
        assert_eq!(split.clone().join(), first);

        let second = body(&shared, b"turn two, longer");
        let split = recent.split(second.clone());
        assert_eq!(split.prefix.len(), shared.len() + "turn ".len());
        assert_eq!(split.tail.len(), "two, longer".len());
        // The prefix is a slice of the first body: no copy of the shared part.
        assert_eq!(split.prefix.as_ptr(), first.as_ptr());
        assert_eq!(split.join(), second);

        // A third turn still shares the first body, not the second: queued messages
        // must not keep each other's buffers alive in a chain.
        let third = body(&shared, b"turn three");
        let split = recent.split(third.clone());
        assert_eq!(split.prefix.as_ptr(), first.as_ptr());
        assert_eq!(split.join(), third);
    }

    #[test]
    fn a_long_new_tail_makes_the_newer_body_the_source() {
        let shared: Vec<u8> = (0..50_000u32).map(|i| (i % 233) as u8).collect();
        let mut recent = RecentBodies::default();
        recent.split(body(&shared, b""));
        let grown = body(&shared, &vec![b'x'; REFRESH_TAIL + 1]);
        recent.split(grown.clone());
        let next = body(&grown, b"more");
        let split = recent.split(next.clone());
        assert_eq!(split.prefix.as_ptr(), grown.as_ptr());
        assert_eq!(split.tail.len(), 4);
        assert_eq!(split.join(), next);
    }

    #[test]
    fn small_or_unrelated_bodies_go_whole_and_the_slots_stay_bounded() {
        let mut recent = RecentBodies::default();
        let small = Bytes::from_static(b"{\"model\":\"m\"}");
        assert_eq!(recent.split(small.clone()).join(), small);
        for i in 0..(SLOTS as u8 + 4) {
            let unrelated = Bytes::from(vec![i; MIN_SHARED * 2]);
            let split = recent.split(unrelated.clone());
            assert!(split.prefix.is_empty());
            assert_eq!(split.join(), unrelated);
        }
        assert_eq!(recent.slots.len(), SLOTS);
    }

    proptest! {
        #[test]
        fn joining_gives_back_every_body_exactly(
            seeds in proptest::collection::vec((0usize..40_000, 0usize..3_000, any::<u8>()), 1..12)
        ) {
            let base: Vec<u8> = (0..60_000u32).map(|i| (i % 97) as u8).collect();
            let mut recent = RecentBodies::default();
            for (keep, extra, fill) in seeds {
                let keep = keep.min(base.len());
                let new = body(&base[..keep], &vec![fill; extra]);
                prop_assert_eq!(recent.split(new.clone()).join(), new);
            }
        }
    }
}
