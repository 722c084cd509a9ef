//! SimHash (Charikar): a 64-bit fingerprint of a document's word shingles
//! whose Hamming distance to another's tracks their similarity, and the
//! permuted block tables (Manku, Jain and Das Sarma, 2007) that find every
//! pair within `max_distance` bits without comparing all pairs.
//!
//! The fingerprint's bits are cut into `blocks` blocks. Two fingerprints
//! that differ in at most k bits agree on at least `blocks − k` whole blocks
//! (pigeonhole), so one table per choice of `blocks − k` blocks, keyed by
//! those blocks' bits, puts every such pair in a shared bucket; the bucket
//! stage then checks the distance of each candidate pair. More blocks mean
//! more tables but longer keys, so smaller buckets: 6 blocks for k = 3 give
//! 20 tables keyed on 32 bits.

/// The fingerprint of hashed shingles: bit i is set when more shingles have
/// it set than not. None without shingles.
pub fn fingerprint(shingles: &[u64]) -> Option<u64> {
    if shingles.is_empty() {
        return None;
    }
    let mut votes = [0i64; 64];
    for &s in shingles {
        for (bit, vote) in votes.iter_mut().enumerate() {
            *vote += ((s >> bit) & 1) as i64 * 2 - 1;
        }
    }
    Some(votes.iter().enumerate().fold(0u64, |f, (bit, &v)| if v > 0 { f | 1 << bit } else { f }))
}

/// The key mask of each table: every choice of `blocks − max_distance`
/// blocks out of `blocks`, in lexicographic order.
pub fn table_masks(blocks: u32, max_distance: u32) -> Result<Vec<u64>, ParamsError> {
    if !(max_distance < blocks && blocks <= 64) {
        return Err(ParamsError::Blocks { blocks, max_distance });
    }
    let block_mask = |i: u32| {
        let (lo, hi) = (i * 64 / blocks, (i + 1) * 64 / blocks);
        (if hi == 64 { u64::MAX } else { (1u64 << hi) - 1 }) & !((1u64 << lo) - 1)
    };
    let keep = (blocks - max_distance) as usize;
    let mut masks = Vec::new();
    let mut choice: Vec<u32> = (0..keep as u32).collect();
    loop {
        masks.push(choice.iter().fold(0, |m, &i| m | block_mask(i)));
        // The next combination: bump the last index that can still move.
        let Some(i) = (0..keep).rev().find(|&i| choice[i] < blocks - (keep - i) as u32) else {
            return Ok(masks);
        };
        choice[i] += 1;
        for j in i + 1..keep {
            choice[j] = choice[j - 1] + 1;
        }
    }
}

use super::minhash::ParamsError;

/// How many bits two fingerprints differ in.
pub fn distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_cover_the_bits_and_every_close_pair_shares_one() {
        let masks = table_masks(6, 3).unwrap();
        assert_eq!(masks.len(), 20);
        assert!(masks.iter().all(|m| (30..=33).contains(&m.count_ones())), "{masks:x?}");
        assert_eq!(masks.iter().fold(0, |a, m| a | m), u64::MAX);
        assert_eq!(table_masks(4, 3).unwrap().len(), 4);
        assert_eq!(table_masks(6, 6), Err(ParamsError::Blocks { blocks: 6, max_distance: 6 }));
        assert!(table_masks(65, 3).is_err());
        // Any flip of up to 3 bits leaves some table's key alone.
        let mut x = 0x0123_4567_89ab_cdefu64;
        for _ in 0..2000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let flips = [(x >> 8) % 64, (x >> 20) % 64, (x >> 32) % 64];
            let y = flips.iter().fold(x, |y, &b| y ^ (1 << b));
            assert!(distance(x, y) <= 3);
            assert!(masks.iter().any(|m| x & m == y & m));
        }
    }

    #[test]
    fn the_fingerprint_is_a_majority_vote() {
        assert_eq!(fingerprint(&[]), None);
        assert_eq!(fingerprint(&[0b1010]), Some(0b1010));
        assert_eq!(fingerprint(&[0b1100, 0b1010, 0b1001]), Some(0b1000));
        // A tie is a zero bit.
        assert_eq!(fingerprint(&[0b01, 0b10]), Some(0));
    }
}
