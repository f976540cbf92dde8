//! SimCash's random numbers, bit for bit (`simulator/src/rng/xorshift.rs`):
//! one xorshift64* stream per simulation, seed 0 read as 1.

/// The simulation's only source of randomness.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A stream from `seed` (0 becomes 1, as in SimCash).
    pub fn new(seed: u64) -> Self {
        Rng { state: if seed == 0 { 1 } else { seed } }
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `min + next % (max - min)`, SimCash's `range` (modulo bias kept).
    /// Callers guarantee `min < max`.
    pub fn range(&mut self, min: i64, max: i64) -> i64 {
        let size = max.saturating_sub(min).max(1) as u64;
        min + (self.next_u64() % size) as i64
    }

    /// A float in [0, 1) from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / ((1u64 << 53) as f64))
    }

    /// Knuth's product method, as SimCash draws arrival counts.
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        let l = (-lambda).exp();
        let mut k = 0u32;
        let mut p = 1.0;
        loop {
            k += 1;
            p *= self.next_f64();
            if p <= l {
                break;
            }
        }
        k - 1
    }

    /// Box–Muller, cos branch only (two draws), as SimCash samples normals.
    pub fn standard_normal(&mut self) -> f64 {
        let u1 = self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_seed_is_one_and_the_stream_is_xorshift64_star() {
        let mut a = Rng::new(0);
        let mut b = Rng::new(1);
        assert_eq!(a.next_u64(), b.next_u64());
        // x = 1: x ^= x>>12 → 1; x ^= x<<25 → 1 + 2^25; x ^= x>>27 → same.
        let x: u64 = 1 | (1 << 25);
        assert_eq!(Rng::new(1).next_u64(), x.wrapping_mul(0x2545_F491_4F6C_DD1D));
    }

    #[test]
    fn floats_are_in_the_unit_interval() {
        let mut rng = Rng::new(42);
        for _ in 0..10_000 {
            let x = rng.next_f64();
            assert!((0.0..1.0).contains(&x));
        }
    }
}
