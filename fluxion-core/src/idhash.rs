//! A cheap hasher for maps and sets keyed by vertex ids.
//!
//! Vertex ids are small integers the graph hands out, never user input, so
//! the per-match maps do not need SipHash's flooding resistance; hashing
//! them showed up at the top of match profiles.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative hasher for integer keys.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        // The multiply spreads consecutive ids over the high bits the
        // hash table picks buckets from.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// Builds [`IdHasher`]s.
pub(crate) type IdBuild = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn consecutive_ids_land_in_different_buckets() {
        let b = IdBuild::default();
        // hashbrown takes the top 7 bits as the control byte and the low
        // bits for the bucket: both must vary between neighbouring ids.
        let hs: Vec<u64> = (0u32..64).map(|i| b.hash_one(i)).collect();
        let low: std::collections::HashSet<u64> = hs.iter().map(|h| h & 63).collect();
        let top: std::collections::HashSet<u64> = hs.iter().map(|h| h >> 57).collect();
        assert!(low.len() > 32, "low bits collide: {}", low.len());
        assert!(top.len() > 32, "top bits collide: {}", top.len());
    }
}
