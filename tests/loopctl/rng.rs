//! The seeded random generator of the fuzzer and of `loopctl fill`.

/// xorshift64*: small, seeded and reproducible.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // Never zero, and seeds close together give unrelated streams.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with a chance of `percent` in 100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }

    /// Fills `buf` with whole outputs, eight bytes at a time (its length
    /// a multiple of eight): the fast form, for data rather than choices.
    pub(crate) fn fill_words(&mut self, buf: &mut [u8]) {
        for w in buf.chunks_exact_mut(8) {
            w.copy_from_slice(&self.next().to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    fn image(seed: u64) -> Vec<u8> {
        let mut buf = vec![0u8; 1 << 20];
        Rng::new(seed).fill_words(&mut buf);
        buf
    }

    #[test]
    fn same_seed_same_data() {
        assert_eq!(image(7), image(7));
    }

    /// Two images of a test (seeds next to each other, as `$SRANDOM` may
    /// give) share no 512-byte sector, in place or moved: a misplaced write
    /// cannot look right.
    #[test]
    fn seeds_share_no_sector() {
        use std::collections::HashSet;
        let a = image(1);
        let b = image(2);
        let sectors: HashSet<&[u8]> = a.chunks(512).collect();
        assert_eq!(sectors.len(), a.len() / 512);
        assert!(b.chunks(512).all(|s| !sectors.contains(s)));
    }
}
