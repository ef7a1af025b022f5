//! How many entries one read of a stream or sorted set asks for. Entries
//! can be a hundred bytes or many megabytes (a wide job, a packed dead
//! letter): a fixed `COUNT` either costs round trips on small entries or
//! makes Redis build a reply of gigabytes on big ones (its output buffer
//! holds the whole reply). So the count follows the biggest entry of the
//! previous read, keeping a reply near [`REPLY_BYTES`]; and a bounded
//! scan also stops after [`SCAN_BYTES`] read, however few entries that is.

use jobstream_core::StreamEntry;

/// What one reply should hold at most, roughly.
pub(crate) const REPLY_BYTES: usize = 1 << 20;

/// The most a bounded scan (one with a scan cap) reads in all.
pub(crate) const SCAN_BYTES: usize = 64 << 20;

/// The first read's count, before any entry size is known: ten entries
/// of any size is a reply Redis can afford.
const FIRST: usize = 10;

/// The count of the next read, learned from the ones before.
#[derive(Debug, Clone)]
pub(crate) struct ReadBatch {
    next: usize,
    max: usize,
    bytes: usize,
}

impl ReadBatch {
    /// At most `max` entries a read (at least 1).
    pub(crate) fn new(max: usize) -> Self {
        let max = max.max(1);
        ReadBatch {
            next: FIRST.min(max),
            max,
            bytes: 0,
        }
    }

    /// The count for the next read.
    pub(crate) fn count(&self) -> usize {
        self.next
    }

    /// Records a read's entries' sizes (bytes each).
    pub(crate) fn saw(&mut self, sizes: impl IntoIterator<Item = usize>) {
        let (mut n, mut biggest) = (0usize, 0usize);
        for size in sizes {
            n += 1;
            biggest = biggest.max(size);
            self.bytes = self.bytes.saturating_add(size);
        }
        if n > 0 {
            self.next = (REPLY_BYTES / biggest.max(1)).clamp(1, self.max);
        }
    }

    /// True once a bounded scan has read its byte budget.
    pub(crate) fn spent(&self) -> bool {
        self.bytes >= SCAN_BYTES
    }
}

/// An entry's size: its id, field names and values.
pub(crate) fn entry_bytes(e: &StreamEntry) -> usize {
    e.id.len()
        + e.fields
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_follows_the_biggest_entry() {
        let mut b = ReadBatch::new(1000);
        assert_eq!(b.count(), FIRST);
        b.saw([100, 200, 50]);
        assert_eq!(b.count(), 1000, "small entries: the most a read may ask");
        b.saw([100, 5 << 20, 100]);
        assert_eq!(b.count(), 1, "a 5 MiB entry: one at a time");
        b.saw([256 << 10]);
        assert_eq!(b.count(), 4);
        b.saw([]);
        assert_eq!(b.count(), 4, "an empty read teaches nothing");
        assert_eq!(
            b.bytes,
            100 + 200 + 50 + 100 + (5 << 20) + 100 + (256 << 10)
        );
        assert!(!b.spent());
        b.saw([SCAN_BYTES]);
        assert!(b.spent());
        assert_eq!(ReadBatch::new(0).count(), 1);
        assert_eq!(ReadBatch::new(3).count(), 3);
    }
}
