//! Deterministic noise: every random number of the day is a pure function of
//! the day's seed, a stream name and an index, so any slice of the day can be
//! computed on its own and two days with the same seed are identical.

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `value`.
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// FNV-1a of a stream name, to key noise by name rather than by number.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

/// The noise source of one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Noise {
    seed: u64,
}

impl Noise {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    /// A 64-bit value for (`stream`, `index`).
    pub fn bits(&self, stream: &str, index: u64) -> u64 {
        mix(mix(self.seed ^ name_hash(stream)) ^ index)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&self, stream: &str, index: u64) -> f64 {
        (self.bits(stream, index) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller over two uniforms).
    pub fn normal(&self, stream: &str, index: u64) -> f64 {
        let first = self.uniform(stream, index.wrapping_mul(2)).max(1e-12);
        let second = self.uniform(stream, index.wrapping_mul(2).wrapping_add(1));
        (-2.0 * first.ln()).sqrt() * (std::f64::consts::TAU * second).cos()
    }

    /// An integer in [0, bound).
    pub fn below(&self, stream: &str, index: u64, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        self.bits(stream, index) % bound
    }

    /// Lowercase hex digits, `length` of them.
    pub fn hex(&self, stream: &str, index: u64, length: usize) -> String {
        let mut text = String::with_capacity(length);
        let mut round = 0u64;
        while text.len() < length {
            let bits = self.bits(stream, index.wrapping_mul(31).wrapping_add(round));
            text.push_str(&format!("{bits:016x}"));
            round += 1;
        }
        text.truncate(length);
        text
    }

    /// Characters from `alphabet`, `length` of them (Docker's 25-character IDs, session IDs).
    pub fn word(&self, stream: &str, index: u64, length: usize, alphabet: &[u8]) -> String {
        (0..length)
            .map(|position| {
                let pick =
                    self.below(stream, index.wrapping_mul(64).wrapping_add(position as u64), alphabet.len() as u64);
                alphabet[pick as usize] as char
            })
            .collect()
    }
}

/// The standard normal distribution's cumulative function (Abramowitz and
/// Stegun 7.1.26 for erf; absolute error below 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z.abs());
    let polynomial =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - polynomial * (-z * z).exp();
    let erf = if z >= 0.0 { erf } else { -erf };
    0.5 * (1.0 + erf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_numbers_and_another_seed_others() {
        let one = Noise::new(7);
        let again = Noise::new(7);
        let other = Noise::new(8);
        let draws = |noise: &Noise| (0..100).map(|index| noise.bits("traffic", index)).collect::<Vec<_>>();
        assert_eq!(draws(&one), draws(&again));
        assert_ne!(draws(&one), draws(&other));
        assert_ne!(one.bits("traffic", 1), one.bits("latency", 1));
    }

    #[test]
    fn uniforms_and_normals_have_their_moments() {
        let noise = Noise::new(42);
        let count = 20_000u64;
        let uniform_mean = (0..count).map(|index| noise.uniform("u", index)).sum::<f64>() / count as f64;
        assert!((uniform_mean - 0.5).abs() < 0.01, "{uniform_mean}");
        let normals: Vec<f64> = (0..count).map(|index| noise.normal("n", index)).collect();
        let mean = normals.iter().sum::<f64>() / count as f64;
        let variance = normals.iter().map(|value| (value - mean).powi(2)).sum::<f64>() / count as f64;
        assert!(mean.abs() < 0.03, "{mean}");
        assert!((variance - 1.0).abs() < 0.05, "{variance}");
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.644_853_6) - 0.95).abs() < 1e-6);
        assert!((normal_cdf(-1.959_964) - 0.025).abs() < 1e-6);
    }
}
