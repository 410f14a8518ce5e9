//! The delivery bookkeeping of one agent instance: what is in flight, what
//! waits for another attempt, and when. A pure state machine over the times
//! it is given, so every rule of at-least-once delivery is unit-tested here.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::Pending;

/// The delay before attempt `n` (n ≥ 2) of a nacked event: 200 ms, doubling, at most 30 s.
pub fn retry_delay(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(2).min(16);
    (Duration::from_millis(200) * 2u32.pow(exp)).min(Duration::from_secs(30))
}

#[derive(Debug)]
struct InFlight {
    pending: Pending,
    sent_at: Instant,
}

#[derive(Debug)]
struct Waiting {
    pending: Pending,
    not_before: Instant,
}

/// What became of a nack.
#[derive(Debug, PartialEq)]
pub enum Nacked {
    /// It will be delivered again as this attempt.
    Retry(u32),
    /// Its attempts are spent (or `retry: false`): to the dead-letter queue.
    Dead(Box<Pending>),
    /// No such delivery was in flight.
    Unknown,
}

/// In-flight and retry queues of one instance. Retries go before anything
/// new, oldest first, so per-instance order holds across redeliveries.
#[derive(Debug)]
pub struct Deliveries {
    max_in_flight: usize,
    max_attempts: u32,
    in_flight: VecDeque<InFlight>,
    retry: VecDeque<Waiting>,
}

impl Deliveries {
    /// Empty, allowing `max_in_flight` unacknowledged deliveries and `max_attempts` attempts.
    pub fn new(max_in_flight: u32, max_attempts: u32) -> Self {
        Self {
            max_in_flight: max_in_flight.max(1) as usize,
            max_attempts: max_attempts.max(1),
            in_flight: VecDeque::new(),
            retry: VecDeque::new(),
        }
    }

    /// The id of the one delivery in flight, when there is exactly one.
    pub fn only_in_flight(&self) -> Option<&str> {
        match self.in_flight.len() {
            1 => self.in_flight.front().map(|f| f.pending.event.id.as_str()),
            _ => None,
        }
    }

    /// How many more deliveries may be in flight.
    pub fn room(&self) -> usize {
        self.max_in_flight.saturating_sub(self.in_flight.len())
    }

    /// Room for one more delivery in flight.
    pub fn has_room(&self) -> bool {
        self.in_flight.len() < self.max_in_flight
    }

    /// Nothing in flight and nothing waiting for a retry.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty() && self.retry.is_empty()
    }

    /// Something waits for a retry: new events must wait behind it.
    pub fn has_retries(&self) -> bool {
        !self.retry.is_empty()
    }

    /// The next retry that may go out now, if there is room.
    pub fn next_retry(&mut self, now: Instant) -> Option<Pending> {
        if !self.has_room() || self.retry.front().is_none_or(|w| w.not_before > now) {
            return None;
        }
        self.retry.pop_front().map(|w| w.pending)
    }

    /// Holds `pending` (not yet sent) to go out first, at `now` or later.
    pub fn hold(&mut self, pending: Pending, now: Instant) {
        self.retry.push_back(Waiting {
            pending,
            not_before: now,
        });
    }

    /// Records that `pending` was sent at `now`.
    pub fn sent(&mut self, pending: Pending, now: Instant) {
        self.in_flight.push_back(InFlight {
            pending,
            sent_at: now,
        });
    }

    /// The agent acknowledged `id`.
    pub fn acked(&mut self, id: &str) -> Option<Pending> {
        let i = self
            .in_flight
            .iter()
            .position(|f| f.pending.event.id == id)?;
        self.in_flight.remove(i).map(|f| f.pending)
    }

    /// The agent nacked `id`; with `retry` it goes back to the front after [`retry_delay`].
    pub fn nacked(&mut self, id: &str, retry: bool, now: Instant) -> Nacked {
        let Some(mut pending) = self.acked(id) else {
            return Nacked::Unknown;
        };
        if !retry || pending.attempt >= self.max_attempts {
            return Nacked::Dead(Box::new(pending));
        }
        pending.attempt += 1;
        let attempt = pending.attempt;
        let not_before = now + retry_delay(attempt);
        // Before every other waiting retry that came later than it.
        let at = self
            .retry
            .iter()
            .position(|w| w.pending.event.id > pending.event.id)
            .unwrap_or(self.retry.len());
        self.retry.insert(
            at,
            Waiting {
                pending,
                not_before,
            },
        );
        Nacked::Retry(attempt)
    }

    /// The process is gone: everything in flight goes back to the front, in
    /// order, as its next attempt (due at once). Returns those whose attempts are spent.
    pub fn take_back(&mut self, now: Instant) -> Vec<Pending> {
        let mut dead = Vec::new();
        let mut back = VecDeque::new();
        for f in self.in_flight.drain(..) {
            let mut pending = f.pending;
            if pending.attempt >= self.max_attempts {
                dead.push(pending);
            } else {
                pending.attempt += 1;
                back.push_back(Waiting {
                    pending,
                    not_before: now,
                });
            }
        }
        back.extend(self.retry.drain(..));
        self.retry = back;
        dead
    }

    /// New limits from an apply: they bound what is sent from now on.
    pub fn set_limits(&mut self, max_in_flight: u32, max_attempts: u32) {
        self.max_in_flight = max_in_flight.max(1) as usize;
        self.max_attempts = max_attempts.max(1);
    }

    /// Everything it holds, oldest first (in flight, then waiting), for
    /// another instance to deliver; an in-flight one counts its attempt.
    pub fn take_all(&mut self) -> Vec<Pending> {
        let mut all: Vec<Pending> = self
            .in_flight
            .drain(..)
            .map(|f| {
                let mut p = f.pending;
                p.attempt += 1;
                p
            })
            .collect();
        all.extend(self.retry.drain(..).map(|w| w.pending));
        all
    }

    /// The oldest delivery in flight for longer than `timeout` at `now`.
    pub fn overdue(&self, now: Instant, timeout: Duration) -> Option<&Pending> {
        let oldest = self.in_flight.front()?;
        (now >= oldest.sent_at + timeout).then_some(&oldest.pending)
    }

    /// When something next needs attention: a retry coming due, or the oldest
    /// delivery passing `timeout`.
    pub fn next_wake(&self, timeout: Duration) -> Option<Instant> {
        let retry = self
            .retry
            .front()
            .filter(|_| self.has_room())
            .map(|w| w.not_before);
        let overdue = self.in_flight.front().map(|f| f.sent_at + timeout);
        match (retry, overdue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use ipc_proto::DeliveredEvent;

    use super::*;

    fn pending(id: &str) -> Pending {
        Pending {
            event: Box::new(DeliveredEvent {
                id: id.into(),
                connection: "c".into(),
                connector: "x".into(),
                name: "e".into(),
                message: None,
                properties: Default::default(),
                instance_key: "k".into(),
                received_at: "2026-11-27T00:00:00Z".into(),
                payload: None,
            }),
            attempt: 1,
            held: false,
            receipt: None,
        }
    }

    #[test]
    fn retry_delays_double_up_to_a_cap() {
        let got: Vec<u64> = (2..=12)
            .map(|a| retry_delay(a).as_millis() as u64)
            .collect();
        assert_eq!(
            got,
            [
                200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_nacked_event_goes_first_after_its_delay() {
        let t0 = Instant::now();
        let mut d = Deliveries::new(1, 5);
        d.sent(pending("a"), t0);
        assert!(!d.has_room());
        assert_eq!(d.nacked("a", true, t0), Nacked::Retry(2));
        assert!(d.has_retries(), "new events wait behind it");
        assert!(d.next_retry(t0).is_none(), "not before its delay");
        assert_eq!(
            d.next_wake(Duration::from_secs(30)),
            Some(t0 + Duration::from_millis(200))
        );
        let p = d.next_retry(t0 + Duration::from_millis(200)).expect("due");
        assert_eq!((p.event.id.as_str(), p.attempt), ("a", 2));
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_run_out_into_the_dead_letter_queue() {
        let t0 = Instant::now();
        let mut d = Deliveries::new(1, 2);
        let mut p = pending("a");
        d.sent(p.clone(), t0);
        assert_eq!(d.nacked("a", true, t0), Nacked::Retry(2));
        p = d.next_retry(t0 + Duration::from_secs(1)).unwrap();
        d.sent(p, t0);
        assert!(matches!(d.nacked("a", true, t0), Nacked::Dead(p) if p.attempt == 2));
        // retry: false is dead at once.
        d.sent(pending("b"), t0);
        assert!(matches!(d.nacked("b", false, t0), Nacked::Dead(_)));
        assert_eq!(d.nacked("nope", true, t0), Nacked::Unknown);
        assert!(d.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_crash_puts_everything_in_flight_back_in_order() {
        let t0 = Instant::now();
        let mut d = Deliveries::new(3, 3);
        for id in ["a", "b", "c"] {
            d.sent(pending(id), t0);
        }
        assert!(d.acked("b").is_some());
        let dead = d.take_back(t0);
        assert!(dead.is_empty());
        let order: Vec<(String, u32)> = std::iter::from_fn(|| d.next_retry(t0))
            .map(|p| (p.event.id, p.attempt))
            .collect();
        assert_eq!(order, [("a".to_string(), 2), ("c".to_string(), 2)]);
    }

    #[tokio::test(start_paused = true)]
    async fn overdue_deliveries_are_found() {
        let t0 = Instant::now();
        let mut d = Deliveries::new(2, 3);
        d.sent(pending("a"), t0);
        d.sent(pending("b"), t0 + Duration::from_secs(1));
        let timeout = Duration::from_secs(5);
        assert!(d.overdue(t0 + Duration::from_secs(4), timeout).is_none());
        assert_eq!(
            d.overdue(t0 + Duration::from_secs(5), timeout)
                .unwrap()
                .event
                .id,
            "a"
        );
        assert_eq!(d.next_wake(timeout), Some(t0 + timeout));
    }
}
