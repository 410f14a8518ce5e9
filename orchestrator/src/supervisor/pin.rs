//! `entry.sha256`: a pinned program is hashed before every spawn.

use std::io;

use super::spawn::ChildSpec;

/// A pinned program: its expected SHA-256, and where a mismatch is recorded.
#[derive(Clone, Debug)]
pub struct Pin {
    /// Lowercase hex.
    pub sha256: String,
    /// `audit.log`.
    pub audit: crate::logs::AuditLog,
    /// The process, for the audit record (`connection/<name>`, `agent/<name>/<key>`).
    pub target: String,
}

/// The SHA-256 of the file at `path`, lowercase hex (read in 64 KiB pieces).
pub fn sha256_file(path: &std::path::Path) -> io::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks a pinned program before it is spawned: a file that does not hash
/// to its pin is refused as `PermissionDenied` (a permanent failure: the
/// process is left `failed`), with both hashes in the error and an audit
/// record. The hash is of the resolved path at this moment; a file swapped
/// between this check and the exec is not caught.
pub async fn check_pin(spec: &ChildSpec) -> io::Result<()> {
    let Some(pin) = &spec.pin else {
        return Ok(());
    };
    let path = spec.program.clone();
    let got = tokio::task::spawn_blocking(move || sha256_file(&path))
        .await
        .map_err(io::Error::other)??;
    if got == pin.sha256 {
        return Ok(());
    }
    pin.audit.record(serde_json::json!({
        "time": crate::logs::timestamp(std::time::SystemTime::now()),
        "kind": "program_rejected",
        "reason": "sha256_mismatch",
        "process": pin.target,
        "program": spec.program.display().to_string(),
        "expected": pin.sha256,
        "actual": got,
    }));
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} does not match its pin: sha256 is {got}, the bundle pins {}",
            spec.program.display(),
            pin.sha256
        ),
    ))
}
