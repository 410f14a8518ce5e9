//! `<stateDir>/offset`: the next `getUpdates` offset, written only after acks.

use std::io;
use std::path::{Path, PathBuf};

use connector_sdk::fs::WriteError;

/// The file that remembers the polling cursor across restarts.
#[derive(Clone, Debug)]
pub struct OffsetFile {
    path: PathBuf,
}

impl OffsetFile {
    /// `offset` in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        OffsetFile {
            path: state_dir.join("offset"),
        }
    }

    /// The stored offset: `Ok(None)` when there is no file yet; an error (with
    /// the file's text) when it does not hold a number.
    pub fn load(&self) -> Result<Option<i64>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        text.trim().parse().map(Some).map_err(|_| {
            format!(
                "{} holds {:?}, not an update offset",
                self.path.display(),
                text.trim()
            )
        })
    }

    /// Stores `offset` durably ([`write_atomic`](connector_sdk::fs::write_atomic):
    /// a crash leaves the old value or the new one), off the runtime's workers.
    pub async fn store(&self, offset: i64) -> Result<(), WriteError> {
        connector_sdk::fs::write_atomic_async(self.path.clone(), format!("{offset}\n")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_bad_contents() {
        let dir = tempfile::tempdir().unwrap();
        let f = OffsetFile::new(&dir.path().join("new"));
        assert_eq!(f.load(), Ok(None));
        f.store(892252935).await.unwrap();
        assert_eq!(f.load(), Ok(Some(892252935)));
        std::fs::write(dir.path().join("new/offset"), "soon").unwrap();
        assert!(f.load().unwrap_err().contains("soon"));
    }
}
