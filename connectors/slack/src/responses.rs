//! The `response_url`s of slash commands and interactions, kept under
//! opaque references: the event carries `response_ref`, the agent passes it
//! to `respond`, and the URL (a credential: whoever has it may post to the
//! channel) never leaves the connector.
//!
//! Slack accepts up to 5 posts to one URL within 30 minutes: an entry
//! expires 30 minutes after its request and after 5 uses. At most
//! [`MAX_ENTRIES`] are kept (the oldest go first). The table lives in memory
//! and in `<stateDir>/response_urls.json` (written through a temporary file
//! and a rename), so a restarted connector can still answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long Slack honours a response_url.
pub const TTL: Duration = Duration::from_secs(30 * 60);
/// How many posts Slack takes on one response_url.
pub const MAX_USES: u32 = 5;
/// Entries kept at most.
pub const MAX_ENTRIES: usize = 500;

const FILE: &str = "response_urls.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    url: String,
    /// Unix seconds.
    expires: u64,
    uses: u32,
}

/// Why a reference cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Unusable {
    /// Never issued, or dropped (expired, or pushed out by newer ones).
    #[error(
        "response_ref {0:?} is unknown or expired (Slack honours a response_url for 30 minutes)"
    )]
    Unknown(String),
    /// Used [`MAX_USES`] times already.
    #[error("response_ref {0:?} was used {MAX_USES} times, the most Slack accepts")]
    UsedUp(String),
}

/// The table. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ResponseUrls {
    path: PathBuf,
    entries: Mutex<BTreeMap<String, Entry>>,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl ResponseUrls {
    /// The table kept in `state_dir`, with what an earlier process left there
    /// (minus what expired). An unreadable file starts empty; the problem is returned to log.
    pub fn load(state_dir: &Path, now: SystemTime) -> (Self, Option<String>) {
        let path = state_dir.join(FILE);
        let (mut entries, problem) = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, Entry>>(&bytes) {
                Ok(e) => (e, None),
                Err(e) => (
                    BTreeMap::new(),
                    Some(format!(
                        "{}: not a response_url table ({e}); starting empty",
                        path.display()
                    )),
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (BTreeMap::new(), None),
            Err(e) => (
                BTreeMap::new(),
                Some(format!("{}: {e}; starting empty", path.display())),
            ),
        };
        let now = unix(now);
        entries.retain(|_, e| e.expires > now);
        (
            ResponseUrls {
                path,
                entries: Mutex::new(entries),
            },
            problem,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `url` under a new reference; returns it, and why it is only in
    /// memory if the file could not be written. `Err`: no randomness for a reference.
    pub fn insert(
        &self,
        url: String,
        now: SystemTime,
    ) -> Result<(String, Option<std::io::Error>), getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        let reference = format!(
            "rsp_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let now = unix(now);
        let mut entries = self.lock();
        entries.retain(|_, e| e.expires > now);
        while entries.len() >= MAX_ENTRIES {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => entries.remove(&k),
                None => break,
            };
        }
        entries.insert(
            reference.clone(),
            Entry {
                url,
                expires: now + TTL.as_secs(),
                uses: 0,
            },
        );
        let unsaved = self.save(&entries).err();
        Ok((reference, unsaved))
    }

    /// The URL of `reference`, counting one use.
    pub fn take(&self, reference: &str, now: SystemTime) -> Result<String, Unusable> {
        let mut entries = self.lock();
        let entry = entries
            .get_mut(reference)
            .filter(|e| e.expires > unix(now))
            .ok_or_else(|| Unusable::Unknown(reference.to_owned()))?;
        if entry.uses >= MAX_USES {
            return Err(Unusable::UsedUp(reference.to_owned()));
        }
        entry.uses += 1;
        let url = entry.url.clone();
        // The count matters less than the answer: a failed write is not a failed call.
        let _ = self.save(&entries);
        Ok(url)
    }

    fn save(&self, entries: &BTreeMap<String, Entry>) -> Result<(), std::io::Error> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(entries).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_expire_are_used_up_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (urls, problem) = ResponseUrls::load(dir.path(), t0);
        assert_eq!(problem, None);
        let (r, unsaved) = urls
            .insert("https://hooks.slack.com/commands/1/2/3".into(), t0)
            .unwrap();
        assert!(unsaved.is_none());
        assert!(r.starts_with("rsp_") && r.len() == 36, "{r}");
        assert!(!r.contains("hooks"));
        for _ in 0..MAX_USES {
            assert_eq!(
                urls.take(&r, t0).unwrap(),
                "https://hooks.slack.com/commands/1/2/3"
            );
        }
        assert_eq!(urls.take(&r, t0), Err(Unusable::UsedUp(r.clone())));

        let (r2, _) = urls
            .insert("https://hooks.slack.com/actions/4".into(), t0)
            .unwrap();
        let (again, _) = ResponseUrls::load(dir.path(), t0 + Duration::from_secs(60));
        assert_eq!(
            again.take(&r2, t0).unwrap(),
            "https://hooks.slack.com/actions/4"
        );
        let late = t0 + TTL + Duration::from_secs(1);
        assert_eq!(again.take(&r2, late), Err(Unusable::Unknown(r2.clone())));
        let (after, _) = ResponseUrls::load(dir.path(), late);
        assert_eq!(
            after.take(&r2, t0),
            Err(Unusable::Unknown(r2)),
            "dropped on load"
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (urls, _) = ResponseUrls::load(dir.path(), t0);
        let (first, _) = urls.insert("https://hooks.slack.com/0".into(), t0).unwrap();
        for i in 1..=MAX_ENTRIES {
            let t = t0 + Duration::from_secs(i as u64);
            urls.insert(format!("https://hooks.slack.com/{i}"), t)
                .unwrap();
        }
        assert_eq!(urls.lock().len(), MAX_ENTRIES);
        assert!(urls.take(&first, t0).is_err(), "the oldest went first");
    }
}
