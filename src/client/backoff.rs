//! Capped exponential backoff with jitter (KIP-580): the n-th retry waits
//! `min(max, base * 2^n)`, scaled by a random factor in `[0.8, 1.2)`.

use std::time::Duration;

use super::rng::Rng;

/// The backoff before retry number `attempt` (0 for the first retry).
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32, rng: &mut Rng) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20));
    let capped = exp.min(max.max(base));
    capped.mul_f64(0.8 + 0.4 * rng.unit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_doubling_up_to_the_cap_with_bounded_jitter() {
        let mut rng = Rng::new(1);
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for (attempt, nominal) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (40, 1000),
        ] {
            for _ in 0..200 {
                let b = backoff(base, max, attempt, &mut rng).as_secs_f64() * 1000.0;
                let n = f64::from(nominal);
                assert!(
                    b >= n * 0.8 - 1e-6 && b < n * 1.2 + 1e-6,
                    "attempt {attempt}: {b}"
                );
            }
        }
    }
}
