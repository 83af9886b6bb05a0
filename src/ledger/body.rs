//! Bodies kept for the audit trail: cut at a bound with a visible marker.

use bytes::Bytes;

/// `body` cut to its first `max` bytes with a visible marker appended; the same `Bytes`
/// (no copy) when it fits.
pub(crate) fn cut_body(body: Bytes, max: usize) -> Bytes {
    if body.len() <= max {
        return body;
    }
    let mut kept = Vec::with_capacity(max + 64);
    kept.extend_from_slice(&body[..max]);
    push_cut_marker(&mut kept, body.len());
    Bytes::from(kept)
}

/// A copy of a body up to a bound; what is past the bound is counted, not kept.
#[derive(Debug)]
pub(crate) struct BoundedCopy {
    kept: Vec<u8>,
    max: usize,
    total: usize,
}

impl BoundedCopy {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            kept: Vec::new(),
            max,
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, data: &[u8]) {
        self.total += data.len();
        let room = self.max.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&data[..data.len().min(room)]);
    }

    pub(crate) fn into_bytes(self) -> Bytes {
        let mut kept = self.kept;
        if self.total > kept.len() {
            push_cut_marker(&mut kept, self.total);
        }
        Bytes::from(kept)
    }
}

/// The marker that says a body was cut: bytes kept, of how many.
fn push_cut_marker(kept: &mut Vec<u8>, total: usize) {
    let marker = format!(
        "\n[llm-gateway: body cut at {} of {total} bytes]",
        kept.len()
    );
    kept.extend_from_slice(marker.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_over_the_bound_is_cut_with_a_marker_and_one_under_is_not_copied() {
        let body = Bytes::from_static(b"0123456789abcdef");
        assert_eq!(
            cut_body(body.clone(), 8),
            Bytes::from_static(b"01234567\n[llm-gateway: body cut at 8 of 16 bytes]")
        );
        let same = cut_body(body.clone(), 16);
        assert_eq!(same.as_ptr(), body.as_ptr());
        let mut copy = BoundedCopy::new(4);
        copy.push(b"abc");
        copy.push(b"def");
        assert_eq!(
            copy.into_bytes(),
            Bytes::from_static(b"abcd\n[llm-gateway: body cut at 4 of 6 bytes]")
        );
    }
}
