//! Jittered exponential backoff for automatic restore (pure, so natively tested).

/// Delay before the first restore attempt, in ms.
pub const BASE_MS: u32 = 250;
/// Upper bound of one delay, in ms.
pub const MAX_MS: u32 = 8_000;
/// Restore attempts before the client gives up and reports `disconnected`.
pub const MAX_ATTEMPTS: u32 = 8;

/// The delay before restore attempt `attempt` (0-based): `BASE_MS * 2^attempt`, capped at
/// `MAX_MS`, then scaled by a factor in [0.5, 1.0] chosen by `unit` (a uniform random value in
/// [0, 1); out-of-range values are clamped). "Equal jitter": never zero, never above the cap,
/// and many clients that lost the proxy together do not come back in lockstep.
pub fn delay_ms(attempt: u32, unit: f64) -> u32 {
    let exp = BASE_MS.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
    let ceiling = exp.min(MAX_MS);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = ceiling / 2;
    // `half` <= 4000, so the product fits easily; truncation is the intended rounding.
    half + (f64::from(ceiling - half) * unit) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_until_the_cap() {
        let top: Vec<u32> = (0..8).map(|a| delay_ms(a, 1.0)).collect();
        assert_eq!(top, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        let bottom: Vec<u32> = (0..8).map(|a| delay_ms(a, 0.0)).collect();
        assert_eq!(bottom, [125, 250, 500, 1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn jitter_stays_within_half_and_full_delay() {
        for attempt in 0..40 {
            for i in 0..=10 {
                let unit = f64::from(i) / 10.0;
                let d = delay_ms(attempt, unit);
                let full = (BASE_MS as u64 * (1u64 << attempt.min(16))).min(MAX_MS as u64) as u32;
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt} unit {unit}: {d}"
                );
            }
        }
    }

    #[test]
    fn hostile_random_values_are_clamped() {
        assert_eq!(delay_ms(0, f64::NAN), 125);
        assert_eq!(delay_ms(0, -3.0), 125);
        assert_eq!(delay_ms(0, 7.0), 250);
        assert_eq!(delay_ms(u32::MAX, 0.5), 6000);
    }
}
