//! The crash-loop circuit: too many failures within a window trip it.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::bundle::Circuit as CircuitConfig;

/// Failure times within the window; trips at `failures` of them.
#[derive(Debug)]
pub struct Circuit {
    config: CircuitConfig,
    failures: VecDeque<Instant>,
}

impl Circuit {
    /// A closed circuit.
    pub fn new(config: &CircuitConfig) -> Self {
        Self {
            config: config.clone(),
            failures: VecDeque::new(),
        }
    }

    /// Records a failure at `now`; true when this one trips the circuit.
    /// A tripped circuit stays tripped while the window holds enough
    /// failures, so a probe that fails again trips it again at once.
    pub fn failure(&mut self, now: Instant) -> bool {
        self.failures.push_back(now);
        while let Some(first) = self.failures.front() {
            if now.duration_since(*first) > self.config.window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
        self.failures.len() >= self.config.failures as usize
    }

    /// Forgets every failure (a long enough run, or a manual restart).
    pub fn reset(&mut self) {
        self.failures.clear();
    }

    /// How long a tripped circuit waits before probing.
    pub fn cooldown(&self) -> std::time::Duration {
        self.config.cooldown
    }

    /// Failures in the window.
    pub fn count(&self) -> usize {
        self.failures.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config() -> CircuitConfig {
        CircuitConfig {
            failures: 3,
            window: Duration::from_secs(60),
            cooldown: Duration::from_secs(300),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn trips_at_the_threshold_within_the_window() {
        let mut c = Circuit::new(&config());
        let t0 = Instant::now();
        assert!(!c.failure(t0));
        assert!(!c.failure(t0 + Duration::from_secs(10)));
        assert!(c.failure(t0 + Duration::from_secs(20)));
        // A probe that fails while the window still holds the others trips it again.
        assert!(c.failure(t0 + Duration::from_secs(30)));
        // Once the window has passed, one failure alone does not.
        assert!(!c.failure(t0 + Duration::from_secs(200)));
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window() {
        let mut c = Circuit::new(&config());
        let t0 = Instant::now();
        c.failure(t0);
        c.failure(t0 + Duration::from_secs(50));
        assert!(
            !c.failure(t0 + Duration::from_secs(100)),
            "the first failure is out of the window"
        );
        assert_eq!(c.count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn reset_closes_it() {
        let mut c = Circuit::new(&config());
        let t0 = Instant::now();
        c.failure(t0);
        c.failure(t0);
        c.reset();
        assert!(!c.failure(t0));
    }
}
