//! `<stateDir>/last_fire`: the last slot the orchestrator acked, as RFC 3339.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use connector_sdk::fs::WriteError;

/// The file that remembers the last fired slot across restarts.
#[derive(Clone, Debug)]
pub struct LastFire {
    path: PathBuf,
}

/// RFC 3339 in UTC with `Z`, with a fraction only when the slot has one.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl LastFire {
    /// `last_fire` in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        LastFire {
            path: state_dir.join("last_fire"),
        }
    }

    /// The remembered slot: `Ok(None)` when there is no file yet; an error
    /// (with the file's text) when it does not hold a time.
    pub fn load(&self) -> Result<Option<DateTime<Utc>>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        DateTime::parse_from_rfc3339(text.trim())
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| {
                format!(
                    "{} holds {:?}, not a time: {e}",
                    self.path.display(),
                    text.trim()
                )
            })
    }

    /// Remembers `slot` durably ([`write_atomic`](connector_sdk::fs::write_atomic):
    /// a crash leaves the old value or the new one, never half of one), off
    /// the runtime's workers.
    pub async fn store(&self, slot: DateTime<Utc>) -> Result<(), WriteError> {
        connector_sdk::fs::write_atomic_async(self.path.clone(), format!("{}\n", rfc3339(slot)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_bad_contents() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("not/yet");
        let lf = LastFire::new(&nested);
        assert_eq!(lf.load(), Ok(None));
        let t = DateTime::parse_from_rfc3339("2026-03-02T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        lf.store(t).await.unwrap();
        assert_eq!(lf.load(), Ok(Some(t)));
        assert_eq!(
            std::fs::read_to_string(nested.join("last_fire")).unwrap(),
            "2026-03-02T00:00:00Z\n"
        );
        std::fs::write(nested.join("last_fire"), "yesterday").unwrap();
        assert!(lf.load().unwrap_err().contains("yesterday"));
    }
}
