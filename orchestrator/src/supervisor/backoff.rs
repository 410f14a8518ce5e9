//! Restart delays: backon's exponential sequence, spread by the policy's jitter fraction.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::bundle::Backoff;

/// The delays before successive restarts of one child.
#[derive(Debug)]
pub struct RestartBackoff {
    config: Backoff,
    delays: backon::ExponentialBackoff,
    rng: fastrand::Rng,
}

impl RestartBackoff {
    /// A fresh sequence for `config`; `seed` makes the jitter repeatable in tests.
    pub fn new(config: &Backoff, seed: Option<u64>) -> Self {
        Self {
            config: config.clone(),
            delays: build(config),
            rng: seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
        }
    }

    /// The next delay: `initial × multiplier^n`, capped at `max`, then spread by
    /// ±`jitter` of itself (and capped again).
    pub fn next_delay(&mut self) -> Duration {
        // `without_max_times` makes the sequence endless; the fallback is for form's sake.
        let base = self.delays.next().unwrap_or(self.config.max);
        let spread = self.config.jitter * (self.rng.f64() * 2.0 - 1.0);
        base.mul_f64((1.0 + spread).max(0.0)).min(self.config.max)
    }

    /// Starts again from `initial` (after a long enough run, or a manual restart).
    pub fn reset(&mut self) {
        self.delays = build(&self.config);
    }
}

fn build(config: &Backoff) -> backon::ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(config.initial)
        .with_factor(config.multiplier as f32)
        .with_max_delay(config.max)
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(jitter: f64) -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(10),
            jitter,
        }
    }

    #[test]
    fn doubles_up_to_the_cap_without_jitter() {
        let mut b = RestartBackoff::new(&config(0.0), Some(1));
        let got: Vec<u64> = (0..6).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = RestartBackoff::new(&config(0.0), Some(1));
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_the_cap() {
        let mut b = RestartBackoff::new(&config(0.2), Some(7));
        let expected = [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0];
        let mut spread = false;
        for want in expected {
            let got = b.next_delay().as_secs_f64();
            assert!(
                got >= want * 0.8 - 1e-9 && got <= (want * 1.2).min(10.0) + 1e-9,
                "{got} vs {want}"
            );
            spread |= (got - want).abs() > 1e-6;
        }
        assert!(spread, "jitter moved at least one delay");
    }

    #[test]
    fn zero_initial_means_immediate_restarts() {
        let mut b = RestartBackoff::new(
            &Backoff {
                initial: Duration::ZERO,
                multiplier: 2.0,
                max: Duration::ZERO,
                jitter: 0.0,
            },
            Some(1),
        );
        assert_eq!(b.next_delay(), Duration::ZERO);
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}
