//! `user: dynamic`: each sandboxed child gets a uid (and gid) of its own
//! from the orchestrator's `--uid-range`, held while it runs and released
//! when it has stopped, as systemd's `DynamicUser`.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

/// The default `--uid-range`.
pub const DEFAULT_UID_RANGE: &str = "61000-61999";

/// An inclusive range of uids (each also used as its gid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UidRange {
    /// The first.
    pub first: u32,
    /// The last.
    pub last: u32,
}

impl Default for UidRange {
    fn default() -> Self {
        Self {
            first: 61_000,
            last: 61_999,
        }
    }
}

impl fmt::Display for UidRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Why a `--uid-range` is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UidRangeError {
    /// Not `FIRST-LAST`.
    #[error("expected FIRST-LAST (e.g. {DEFAULT_UID_RANGE}), found `{0}`")]
    Syntax(String),
    /// Empty, or reaching root or the system users.
    #[error("`{0}` must be increasing and above 1000 (the system users), below 2^31")]
    Bounds(String),
}

impl FromStr for UidRange {
    type Err = UidRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| UidRangeError::Syntax(s.to_string()))?;
        let parse = |x: &str| {
            x.trim()
                .parse::<u32>()
                .map_err(|_| UidRangeError::Syntax(s.to_string()))
        };
        let (first, last) = (parse(a)?, parse(b)?);
        if first <= 1000 || last < first || last >= 1 << 31 {
            return Err(UidRangeError::Bounds(s.to_string()));
        }
        Ok(Self { first, last })
    }
}

struct Pool {
    range: UidRange,
    /// Uids of the range some account on this machine already has.
    taken: BTreeSet<u32>,
    leased: BTreeSet<u32>,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// Sets the range (at the start of a run); uids of existing accounts are
/// never handed out.
pub fn set_range(range: UidRange) {
    let taken = (range.first..=range.last)
        .filter(|uid| {
            let uid = nix::unistd::Uid::from_raw(*uid);
            !matches!(nix::unistd::User::from_uid(uid), Ok(None))
        })
        .collect();
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    *pool = Some(Pool {
        range,
        taken,
        leased: BTreeSet::new(),
    });
}

/// A uid held by one running child; released when dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct UidLease(u32);

impl UidLease {
    /// The uid (and gid).
    pub fn uid(&self) -> u32 {
        self.0
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pool.as_mut() {
            pool.leased.remove(&self.0);
        }
    }
}

/// A free uid for the child `key`: the same one across its restarts while
/// it is free (a hash of `key` picks where to start looking).
pub fn lease(key: &str) -> Result<UidLease, String> {
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = guard.get_or_insert_with(|| Pool {
        range: UidRange::default(),
        taken: BTreeSet::new(),
        leased: BTreeSet::new(),
    });
    let size = u64::from(pool.range.last - pool.range.first) + 1;
    let start = fnv(key) % size;
    for i in 0..size {
        let uid = pool.range.first + ((start + i) % size) as u32;
        if !pool.taken.contains(&uid) && pool.leased.insert(uid) {
            return Ok(UidLease(uid));
        }
    }
    Err(format!(
        "user dynamic: every uid of {} is in use (--uid-range)",
        pool.range
    ))
}

fn fnv(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_refuse_nonsense() {
        assert_eq!(
            "61000-61999".parse::<UidRange>(),
            Ok(UidRange {
                first: 61000,
                last: 61999
            })
        );
        for bad in ["61000", "a-b", "0-100", "5000-4000", "61000-4294967295"] {
            assert!(bad.parse::<UidRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn leases_are_distinct_stable_and_released() {
        set_range("70000-70002".parse().expect("range"));
        let a = lease("connection/a").expect("a");
        let b = lease("connection/b").expect("b");
        let c = lease("connection/c").expect("c");
        let mut uids = [a.uid(), b.uid(), c.uid()];
        uids.sort_unstable();
        assert_eq!(uids, [70000, 70001, 70002]);
        let err = lease("connection/d").expect_err("exhausted");
        assert!(err.contains("70000-70002"), "{err}");
        let was = a.uid();
        drop(a);
        assert_eq!(lease("connection/a").expect("again").uid(), was);
    }
}
