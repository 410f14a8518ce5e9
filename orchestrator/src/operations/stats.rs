//! Counters of one operation of one Connection, and its latency percentiles.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use ipc_proto::FailureClass;
use serde::{Deserialize, Serialize};

/// Latencies kept for the percentiles (the most recent ones).
const SAMPLES: usize = 2048;

/// What `status --json` shows per operation under its Connection's row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStats {
    /// Invokes received.
    pub invocations: u64,
    /// Invokes that succeeded.
    pub ok: u64,
    /// Failed invokes by class (`policy_denied`, `timeout`, …).
    pub failed: BTreeMap<String, u64>,
    /// Calls made again after a retryable failure.
    pub retries: u64,
    /// Invokes in progress now.
    pub in_flight: u64,
    /// Median of the recent invokes' durations, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile of the recent invokes' durations, in milliseconds.
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    invocations: u64,
    ok: u64,
    failed: BTreeMap<FailureClass, u64>,
    retries: u64,
    in_flight: u64,
    latencies: VecDeque<Duration>,
}

impl Counters {
    pub fn started(&mut self) {
        self.invocations += 1;
        self.in_flight += 1;
    }

    pub fn retried(&mut self) {
        self.retries += 1;
    }

    pub fn finished(&mut self, outcome: Option<FailureClass>, took: Duration) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match outcome {
            None => self.ok += 1,
            Some(class) => *self.failed.entry(class).or_default() += 1,
        }
        if self.latencies.len() == SAMPLES {
            self.latencies.pop_front();
        }
        self.latencies.push_back(took);
    }

    pub fn snapshot(&self) -> OperationStats {
        let mut sorted: Vec<Duration> = self.latencies.iter().copied().collect();
        sorted.sort_unstable();
        let at = |q: f64| {
            (!sorted.is_empty()).then(|| {
                let i = ((sorted.len() - 1) as f64 * q).round() as usize;
                sorted[i].as_secs_f64() * 1000.0
            })
        };
        OperationStats {
            invocations: self.invocations,
            ok: self.ok,
            failed: self
                .failed
                .iter()
                .map(|(c, n)| (c.as_str().to_string(), *n))
                .collect(),
            retries: self.retries,
            in_flight: self.in_flight,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_counts() {
        let mut c = Counters::default();
        for ms in 1..=100 {
            c.started();
            let outcome = (ms % 10 == 0).then_some(FailureClass::Timeout);
            c.finished(outcome, Duration::from_millis(ms));
        }
        let s = c.snapshot();
        assert_eq!((s.invocations, s.ok, s.in_flight), (100, 90, 0));
        assert_eq!(s.failed["timeout"], 10);
        assert_eq!(s.p50_ms, Some(51.0));
        assert_eq!(s.p99_ms, Some(99.0));
    }
}
