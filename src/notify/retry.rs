//! The retry schedule: exponential backoff with jitter, capped, for a bounded number
//! of attempts.

use std::time::Duration;

/// The delay before attempt `failures + 1`, after `failures` failed attempts (>= 1):
/// `base * 2^(failures-1)`, capped at `max`, then scaled by a random factor in
/// [0.8, 1.2) so that many failing notifications do not retry in lockstep.
pub fn backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp.min(20)).min(max);
    let jitter = 0.8 + 0.4 * unit_random();
    raw.mul_f64(jitter).min(max)
}

/// A number in [0, 1) from the process's random source (uuid v4 bits).
fn unit_random() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps() {
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(60);
        let first = backoff(1, base, max);
        assert!(first >= Duration::from_millis(400) && first < Duration::from_millis(600));
        let fourth = backoff(4, base, max);
        assert!(fourth >= Duration::from_millis(3200) && fourth < Duration::from_millis(4800));
        assert!(backoff(40, base, max) <= max);
        assert!(backoff(40, base, max) >= Duration::from_secs(48));
    }
}
