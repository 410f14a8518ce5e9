//! Interaction tokens kept under opaque references.
//!
//! An interaction's token lets anyone holding it post as the application
//! into that interaction for 15 minutes, so it never leaves the connector:
//! the event carries a random reference (`interaction` property), and the
//! `followup` operation takes the reference back. Each entry expires 15
//! minutes after the interaction arrived, as the token itself does, and the
//! store holds at most `capacity` entries: at capacity the oldest (the
//! first to expire) goes. References do not survive a restart of the
//! connector.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// How long Discord accepts an interaction token.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// What a reference stands for.
#[derive(Clone, PartialEq, Eq)]
pub struct Interaction {
    /// The application the interaction was for.
    pub application_id: String,
    /// The interaction token.
    pub token: String,
}

impl fmt::Debug for Interaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interaction")
            .field("application_id", &self.application_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Why a reference gives no token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// Never issued, or dropped to make room, or issued before a restart.
    #[error(
        "interaction reference '{0}' is unknown to this connector (never issued, dropped at capacity, or from before a restart)"
    )]
    Unknown(String),
    /// Issued, but the 15 minutes Discord gives an interaction token are over.
    #[error("interaction reference '{0}' expired: Discord's interaction tokens last 15 minutes")]
    Expired(String),
}

struct Entry {
    interaction: Interaction,
    interaction_id: String,
    expires: Instant,
}

/// The references in issue, bounded and expiring.
pub struct Tokens {
    capacity: usize,
    lifetime: Duration,
    by_ref: HashMap<String, Entry>,
    by_interaction: HashMap<String, String>,
    /// References in the order issued, which is also the order they expire.
    order: VecDeque<String>,
    /// Recently expired references, so a late followup is told "expired", not "unknown".
    expired: VecDeque<String>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("capacity", &self.capacity)
            .field("held", &self.by_ref.len())
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// A store of at most `capacity` (at least 1) references, each valid for `lifetime`.
    pub fn new(capacity: usize, lifetime: Duration) -> Self {
        Tokens {
            capacity: capacity.max(1),
            lifetime,
            by_ref: HashMap::new(),
            by_interaction: HashMap::new(),
            order: VecDeque::new(),
            expired: VecDeque::new(),
        }
    }

    /// How many references are held.
    pub fn len(&self) -> usize {
        self.by_ref.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_ref.is_empty()
    }

    /// Keeps `interaction` (whose id is `interaction_id`, received at `now`)
    /// and gives its reference; the same interaction again (Discord
    /// retrying) gets the reference it already has.
    pub fn insert(
        &mut self,
        interaction_id: &str,
        interaction: Interaction,
        now: Instant,
    ) -> String {
        self.purge(now);
        if let Some(r) = self.by_interaction.get(interaction_id) {
            return r.clone();
        }
        while self.by_ref.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.forget(&oldest);
        }
        let reference = format!("dint_{}", uuid::Uuid::new_v4().simple());
        self.by_interaction
            .insert(interaction_id.to_owned(), reference.clone());
        self.by_ref.insert(
            reference.clone(),
            Entry {
                interaction,
                interaction_id: interaction_id.to_owned(),
                expires: now + self.lifetime,
            },
        );
        self.order.push_back(reference.clone());
        reference
    }

    /// The interaction behind `reference`, if it is still valid at `now`.
    pub fn get(&mut self, reference: &str, now: Instant) -> Result<Interaction, LookupError> {
        self.purge(now);
        match self.by_ref.get(reference) {
            Some(e) => Ok(e.interaction.clone()),
            None if self.expired.iter().any(|r| r == reference) => {
                Err(LookupError::Expired(reference.to_owned()))
            }
            None => Err(LookupError::Unknown(reference.to_owned())),
        }
    }

    /// Drops `reference` (its event was refused, so nobody will use it).
    pub fn remove(&mut self, reference: &str) {
        self.forget(reference);
        self.order.retain(|r| r != reference);
    }

    fn forget(&mut self, reference: &str) {
        if let Some(e) = self.by_ref.remove(reference) {
            self.by_interaction.remove(&e.interaction_id);
        }
    }

    /// Drops the entries expired at `now`, remembering a bounded number of their references.
    fn purge(&mut self, now: Instant) {
        while let Some(first) = self.order.front() {
            let due = self.by_ref.get(first).is_none_or(|e| e.expires <= now);
            if !due {
                break;
            }
            let Some(reference) = self.order.pop_front() else {
                break;
            };
            if self.by_ref.contains_key(&reference) {
                self.forget(&reference);
                self.expired.push_back(reference);
                if self.expired.len() > self.capacity {
                    self.expired.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(token: &str) -> Interaction {
        Interaction {
            application_id: "app".into(),
            token: token.into(),
        }
    }

    #[test]
    fn references_expire_with_the_token() {
        let t0 = Instant::now();
        let mut s = Tokens::new(10, TOKEN_LIFETIME);
        let r = s.insert("i1", it("secret-1"), t0);
        assert!(r.starts_with("dint_") && !r.contains("secret"), "{r}");
        assert_eq!(s.get(&r, t0 + Duration::from_secs(899)), Ok(it("secret-1")));
        assert_eq!(
            s.get(&r, t0 + TOKEN_LIFETIME),
            Err(LookupError::Expired(r.clone()))
        );
        assert!(s.is_empty());
        assert_eq!(
            s.get("dint_nope", t0),
            Err(LookupError::Unknown("dint_nope".into()))
        );
    }

    #[test]
    fn the_store_is_bounded_and_retries_share_a_reference() {
        let t0 = Instant::now();
        let mut s = Tokens::new(2, TOKEN_LIFETIME);
        let a = s.insert("a", it("ta"), t0);
        assert_eq!(
            s.insert("a", it("ta"), t0),
            a,
            "a retry gets the same reference"
        );
        let b = s.insert("b", it("tb"), t0);
        let c = s.insert("c", it("tc"), t0);
        assert_eq!(s.len(), 2);
        assert!(matches!(s.get(&a, t0), Err(LookupError::Unknown(_))));
        assert_eq!(s.get(&b, t0), Ok(it("tb")));
        assert_eq!(s.get(&c, t0), Ok(it("tc")));
        assert_ne!(b, c);
        s.remove(&b);
        assert!(s.get(&b, t0).is_err());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn debug_hides_tokens() {
        let mut s = Tokens::new(2, TOKEN_LIFETIME);
        s.insert("a", it("very-secret"), Instant::now());
        assert!(!format!("{s:?} {:?}", it("very-secret")).contains("very-secret"));
    }
}
