//! numpy's legacy `RandomState(seed).randint(low, high, dtype=uint64)`,
//! which datatrove draws its MinHash permutations from: the Mersenne
//! Twister seeded as `init_genrand`, 64-bit draws made of two 32-bit ones,
//! and numpy's masked rejection sampling for bounded integers.

pub struct RandomState {
    mt: [u32; 624],
    index: usize,
}

impl RandomState {
    pub fn new(seed: u32) -> RandomState {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32.wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_add(i as u32);
        }
        RandomState { mt, index: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for i in 0..624 {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7fff_ffff);
                let mut next = self.mt[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    next ^= 0x9908_b0df;
                }
                self.mt[i] = next;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn next_u64(&mut self) -> u64 {
        let high = u64::from(self.next_u32());
        (high << 32) | u64::from(self.next_u32())
    }

    /// `randint(low, high, dtype=np.uint64)`: `high` exclusive, for ranges
    /// wider than 32 bits (numpy draws narrower ones 32 bits at a time).
    pub fn randint_u64(&mut self, low: u64, high: u64) -> u64 {
        let range = high - 1 - low;
        assert!(range > u64::from(u32::MAX), "only the 64-bit path is implemented");
        let mask = u64::MAX >> range.leading_zeros();
        loop {
            let value = self.next_u64() & mask;
            if value <= range {
                return low + value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy 2: `np.random.RandomState(1)`; `randint(1, 2**61 - 1, dtype=np.uint64, size=4)`,
    /// then `randint(0, 2**61 - 1, dtype=np.uint64, size=4)`.
    #[test]
    fn draws_what_numpy_draws() {
        let p = (1u64 << 61) - 1;
        let mut r = RandomState::new(1);
        let a: Vec<u64> = (0..4).map(|_| r.randint_u64(1, p)).collect();
        let b: Vec<u64> = (0..4).map(|_| r.randint_u64(0, p)).collect();
        assert_eq!(a, [775169054918279404, 1758426461858698313, 2109959069025162, 965365488286768774]);
        assert_eq!(b, [401325382989534144, 1703346441743126657, 1130051441076870727, 1762784241922636284]);
    }
}
