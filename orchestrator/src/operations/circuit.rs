//! The circuit of one Connection's operations: provider failures trip it,
//! a tripped one fails fast, one probe after the cooldown closes or re-opens it.

use std::time::{Duration, Instant};

use ipc_proto::FailureClass;

use super::ConnectionOps;
use super::govern::Failure;

impl ConnectionOps {
    /// Whether a call may go: `Ok(true)` when it is the probe of a tripped
    /// circuit, `Err` (`unavailable`) while the circuit is open.
    pub(super) fn circuit_gate(&self) -> Result<bool, Failure> {
        let Some(circuit) = &self.circuit else {
            return Ok(false);
        };
        let mut c = circuit.lock().expect("ops lock");
        let Some(until) = c.open_until else {
            return Ok(false);
        };
        let now = Instant::now();
        if now < until || c.probing {
            let wait = until.saturating_duration_since(now);
            return Err(Failure {
                retry_after_ms: Some(wait.as_millis().max(1) as u64),
                ..Failure::new(
                    FailureClass::Unavailable,
                    format!(
                        "Connection/{} is degraded (circuit open after {} failures); next probe in {}",
                        self.name,
                        c.failures.count(),
                        humantime::format_duration(Duration::from_millis(wait.as_millis() as u64))
                    ),
                )
            });
        }
        c.probing = true;
        Ok(true)
    }

    /// Counts a call's outcome in the circuit: provider failures (after at
    /// least one call) may trip it; a probe closes it or opens it again.
    pub(super) fn circuit_after(&self, probe: bool, failed: Option<FailureClass>, attempts: u32) {
        let Some(circuit) = &self.circuit else {
            return;
        };
        let mut c = circuit.lock().expect("ops lock");
        let provider_failure = attempts > 0
            && matches!(
                failed,
                Some(FailureClass::Transient | FailureClass::Timeout | FailureClass::Permanent)
                    | Some(FailureClass::Unavailable)
            );
        let now = Instant::now();
        if probe {
            c.probing = false;
            if attempts == 0 {
                return; // refused before any call: the next one probes
            }
            if failed.is_none() {
                c.open_until = None;
                c.failures.reset();
            } else {
                c.open_until = Some(now + c.failures.cooldown());
            }
            return;
        }
        if provider_failure
            && c.failures.failure(tokio::time::Instant::now())
            && c.open_until.is_none()
        {
            c.open_until = Some(now + c.failures.cooldown());
            c.trips += 1;
        }
    }
}
