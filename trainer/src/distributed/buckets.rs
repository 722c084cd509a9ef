//! Where every gradient goes on its way between ranks: parameters in the
//! order the backward pass produces their gradients, packed into buckets of
//! about `bucket_mb`, each padded to a multiple of the world size so that
//! it splits into equal shards. Rank `r`'s shard of a bucket is its `r`-th
//! slice; under ZeRO, that rank alone keeps the optimizer state (and with
//! ZeRO-2 the reduced gradient) of those elements.

/// Bucket `b` spans `[start, start + len)` of the flat layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub start: i64,
    pub len: i64,
}

/// The part of a parameter that one rank owns: elements
/// `[offset, offset + len)` of the flattened parameter, stored at
/// `local` in that rank's shard buffer (every bucket's share, back to
/// back), which is `in_share` into bucket `bucket`'s share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub param: usize,
    pub offset: i64,
    pub len: i64,
    pub local: i64,
    pub bucket: usize,
    pub in_share: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub world: i64,
    pub buckets: Vec<Bucket>,
    /// Per parameter (in the caller's numbering): its bucket and flat offset.
    pub bucket_of: Vec<usize>,
    pub offset_of: Vec<i64>,
    pub numel: Vec<i64>,
}

impl Layout {
    /// `order`: parameter indices in the order their gradients become ready
    /// (every index once); the first bucket closes once it holds `first_cap`
    /// elements, the others at `cap`. (A small first bucket, as DDP's 1 MiB
    /// one, starts communication early in the backward pass.)
    pub fn new(order: &[usize], numel: &[i64], first_cap: i64, cap: i64, world: i64) -> Layout {
        assert_eq!(order.len(), numel.len());
        let mut buckets = Vec::new();
        let mut bucket_of = vec![0; numel.len()];
        let mut offset_of = vec![0; numel.len()];
        let (mut start, mut filled) = (0i64, 0i64);
        let close = |start: &mut i64, filled: &mut i64, buckets: &mut Vec<Bucket>| {
            let len = (*filled + world - 1) / world * world;
            buckets.push(Bucket { start: *start, len });
            *start += len;
            *filled = 0;
        };
        for &p in order {
            let limit = if buckets.is_empty() { first_cap } else { cap };
            if filled > 0 && filled + numel[p] > limit {
                close(&mut start, &mut filled, &mut buckets);
            }
            bucket_of[p] = buckets.len();
            offset_of[p] = start + filled;
            filled += numel[p];
        }
        if filled > 0 {
            close(&mut start, &mut filled, &mut buckets);
        }
        Layout { world, buckets, bucket_of, offset_of, numel: numel.to_vec() }
    }

    /// Elements in one rank's shard buffer: every bucket's share.
    pub fn shard_len(&self) -> i64 {
        self.buckets.iter().map(|b| b.len / self.world).sum()
    }

    /// Rank `rank`'s share of bucket `b`, in flat coordinates.
    pub fn shard_of(&self, b: usize, rank: i64) -> (i64, i64) {
        let bucket = self.buckets[b];
        let n = bucket.len / self.world;
        (bucket.start + rank * n, n)
    }

    /// The parts of parameters that `rank` owns, by parameter.
    pub fn pieces(&self, rank: i64) -> Vec<Piece> {
        let mut pieces = Vec::new();
        for param in 0..self.numel.len() {
            let b = self.bucket_of[param];
            let (lo, n) = self.shard_of(b, rank);
            let (start, end) = (self.offset_of[param], self.offset_of[param] + self.numel[param]);
            let (from, to) = (start.max(lo), end.min(lo + n));
            if from < to {
                let in_share = from - lo;
                let local = self.buckets[b].start / self.world + in_share;
                pieces.push(Piece { param, offset: from - start, len: to - from, local, bucket: b, in_share });
            }
        }
        pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_ready_order_and_pad_to_the_world() {
        // Parameters 0..4 with 5, 3, 8, 2 elements, ready in reverse.
        let layout = Layout::new(&[3, 2, 1, 0], &[5, 3, 8, 2], 10, 10, 3);
        assert_eq!(layout.buckets, vec![Bucket { start: 0, len: 12 }, Bucket { start: 12, len: 9 }]);
        assert_eq!(layout.bucket_of, vec![1, 1, 0, 0]);
        assert_eq!(layout.offset_of, vec![15, 12, 2, 0]);
        assert_eq!(layout.shard_len(), 4 + 3);
        // A small first bucket takes the first gradient alone.
        let layout = Layout::new(&[3, 2, 1, 0], &[5, 3, 8, 2], 2, 10, 1);
        assert_eq!(layout.bucket_of, vec![2, 2, 1, 0]);
        assert_eq!(layout.buckets.len(), 3);
    }

    #[test]
    fn every_element_is_owned_by_exactly_one_rank() {
        let numel = [5i64, 3, 8, 2, 11];
        let layout = Layout::new(&[4, 3, 2, 1, 0], &numel, 4, 9, 3);
        let mut owner: Vec<Vec<i64>> = numel.iter().map(|&n| vec![-1; n as usize]).collect();
        for rank in 0..3 {
            let mut locals = Vec::new();
            for p in layout.pieces(rank) {
                for i in p.offset..p.offset + p.len {
                    assert_eq!(owner[p.param][i as usize], -1, "element owned twice");
                    owner[p.param][i as usize] = rank;
                }
                locals.extend(p.local..p.local + p.len);
                // The piece sits where the reduce-scatter of its bucket puts it.
                let b = layout.bucket_of[p.param];
                let (lo, _) = layout.shard_of(b, rank);
                let flat = layout.offset_of[p.param] + p.offset;
                assert_eq!(p.local - layout.buckets[b].start / 3, flat - lo);
                assert_eq!((p.bucket, p.in_share), (b, flat - lo));
            }
            assert!(locals.iter().all(|&l| l < layout.shard_len()));
            locals.sort();
            locals.dedup();
            assert_eq!(locals.len() as i64, layout.pieces(rank).iter().map(|p| p.len).sum::<i64>());
        }
        assert!(owner.iter().flatten().all(|&r| r >= 0), "an element nobody owns");
    }
}
