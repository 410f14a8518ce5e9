//! Wall-clock time a connector can be tested with: [`Clock`] and [`MockClock`].
//!
//! A connector that schedules by the wall clock (cron) or waits between
//! retries (a poller's backoff) reads the time and sleeps through the
//! [`Clock`] of its context, [`Context::clock`](crate::Context::clock)
//! (or [`AgentContext::clock`](crate::agent::AgentContext::clock)). That is
//! the system clock unless the context was built with another one
//! ([`serve_with_clock`](crate::serve_with_clock)), as the test harness
//! [`run_connector`](crate::testing::run_connector) does with a
//! [`MockClock`]: time stands still until the test moves it, and the test
//! can see every sleep the connector is waiting in, so it asserts "the
//! connector backs off until T" without any real waiting.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use connector_sdk::MockClock;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mock = MockClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
//! let clock = mock.clock();
//! let sleeper = tokio::spawn(async move { clock.sleep(Duration::from_secs(5)).await });
//! // The sleep is registered: its deadline is visible to the test.
//! let deadline = mock.next_sleeper(Duration::from_secs(5)).await.unwrap();
//! assert_eq!(deadline, SystemTime::UNIX_EPOCH + Duration::from_secs(1_005));
//! mock.set(deadline);
//! sleeper.await.unwrap();
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// The longest single real sleep: a wall-clock deadline is re-checked at
/// least this often, so a clock step (NTP, suspend) delays a wake-up by at
/// most this much.
const MAX_REAL_SLEEP: Duration = Duration::from_secs(30);

/// A source of wall-clock time and of sleeps until a wall-clock time.
///
/// Cheap to clone. [`Clock::system`] in production; [`MockClock::clock`] in tests.
#[derive(Clone)]
pub struct Clock {
    mock: Option<Arc<Mock>>,
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mock {
            None => f.write_str("Clock(system)"),
            Some(m) => write!(f, "Clock(mock at {:?})", m.state.borrow().now),
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { mock: None }
    }

    /// Whether this is a [`MockClock`]'s clock.
    pub fn is_mock(&self) -> bool {
        self.mock.is_some()
    }

    /// The current wall-clock time.
    pub fn now(&self) -> SystemTime {
        match &self.mock {
            None => SystemTime::now(),
            Some(m) => m.state.borrow().now,
        }
    }

    /// Resolves once [`now`](Self::now) is at or past `deadline`.
    ///
    /// Cancel-safe: dropping the future forgets the sleep.
    pub async fn sleep_until(&self, deadline: SystemTime) {
        match &self.mock {
            None => loop {
                let Ok(left) = deadline.duration_since(SystemTime::now()) else {
                    return;
                };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(MAX_REAL_SLEEP)).await;
            },
            Some(m) => m.sleep_until(deadline).await,
        }
    }

    /// Resolves once `duration` has passed on this clock.
    pub async fn sleep(&self, duration: Duration) {
        let deadline = self.now() + duration;
        self.sleep_until(deadline).await
    }
}

/// What a mock clock's watchers see.
#[derive(Debug)]
struct MockState {
    now: SystemTime,
    /// Pending sleeps by id: their deadlines.
    sleepers: BTreeMap<u64, SystemTime>,
    next_id: u64,
}

#[derive(Debug)]
struct Mock {
    state: watch::Sender<MockState>,
}

impl Mock {
    async fn sleep_until(&self, deadline: SystemTime) {
        let mut rx = self.state.subscribe();
        let mut id = 0;
        self.state.send_modify(|s| {
            id = s.next_id;
            s.next_id += 1;
            s.sleepers.insert(id, deadline);
        });
        let _forget = Forget { mock: self, id };
        // The sender lives in `self`, so the channel cannot close here.
        let _ = rx.wait_for(|s| s.now >= deadline).await;
    }
}

/// Removes a sleep from the table when it ends or is dropped.
struct Forget<'a> {
    mock: &'a Mock,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.mock.state.send_modify(|s| {
            s.sleepers.remove(&self.id);
        });
    }
}

/// A clock that moves only when the test says so.
///
/// Clones control the same time. Hand [`clock`](Self::clock) to the code
/// under test ([`Context::connect_with_clock`](crate::Context::connect_with_clock),
/// [`serve_with_clock`](crate::serve_with_clock), [`Agent::clock`](crate::agent::Agent::clock)),
/// or the mock itself to [`TestConfig::clock`](crate::testing::TestConfig::clock); [`set`](Self::set) and [`advance`](Self::advance) wake every
/// sleep whose deadline is reached.
#[derive(Clone)]
pub struct MockClock {
    mock: Arc<Mock>,
}

impl fmt::Debug for MockClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.mock.state.borrow();
        f.debug_struct("MockClock")
            .field("now", &s.now)
            .field("sleepers", &s.sleepers.values().collect::<Vec<_>>())
            .finish()
    }
}

impl MockClock {
    /// A mock clock that reads `start` until it is moved.
    pub fn new(start: SystemTime) -> Self {
        let (state, _) = watch::channel(MockState {
            now: start,
            sleepers: BTreeMap::new(),
            next_id: 0,
        });
        MockClock {
            mock: Arc::new(Mock { state }),
        }
    }

    /// A mock clock at `secs` seconds after the Unix epoch.
    pub fn at_unix(secs: u64) -> Self {
        Self::new(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// The [`Clock`] the code under test reads.
    pub fn clock(&self) -> Clock {
        Clock {
            mock: Some(self.mock.clone()),
        }
    }

    /// The mock's current time.
    pub fn now(&self) -> SystemTime {
        self.mock.state.borrow().now
    }

    /// Sets the time (backwards too) and wakes the sleeps it reaches.
    pub fn set(&self, now: SystemTime) {
        self.mock.state.send_modify(|s| s.now = now);
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.mock.state.send_modify(|s| s.now += by);
    }

    /// The deadlines of the sleeps waiting now (deadline after [`now`](Self::now)), earliest first.
    pub fn sleepers(&self) -> Vec<SystemTime> {
        let s = self.mock.state.borrow();
        let mut v: Vec<_> = s
            .sleepers
            .values()
            .copied()
            .filter(|d| *d > s.now)
            .collect();
        v.sort();
        v
    }

    /// Waits (at most `limit`, real time) until some sleep is waiting for a
    /// time after [`now`](Self::now); returns the earliest such deadline, or
    /// `None` when none came in time.
    ///
    /// A sleep the last [`set`](Self::set) woke does not count, even while
    /// its task has not run yet: the answer is always the code's next wait.
    pub async fn next_sleeper(&self, limit: Duration) -> Option<SystemTime> {
        let pick = |s: &MockState| s.sleepers.values().copied().filter(|d| *d > s.now).min();
        let mut rx = self.mock.state.subscribe();
        let found = tokio::time::timeout(limit, rx.wait_for(|s| pick(s).is_some())).await;
        match found {
            Ok(Ok(state)) => pick(&state),
            _ => None,
        }
    }

    /// Waits for a sleep as [`next_sleeper`](Self::next_sleeper) does, then
    /// sets the time to its deadline, waking it; returns the deadline.
    pub async fn advance_to_next_sleeper(&self, limit: Duration) -> Option<SystemTime> {
        let deadline = self.next_sleeper(limit).await?;
        self.set(deadline);
        Some(deadline)
    }
}
