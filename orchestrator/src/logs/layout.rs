//! Where things live in the state directory (DESIGN.md, State directory).

use std::io;
use std::path::{Path, PathBuf};

/// The state directory and the paths inside it.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Creates the directory and its `logs/` and `state/` folders.
    pub fn create(root: &Path) -> io::Result<Self> {
        for sub in [
            "logs/connections",
            "logs/agents",
            "state/connections",
            "state/agents",
        ] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        Ok(Self {
            root: std::path::absolute(root)?,
        })
    }

    /// Uses an existing directory without creating anything (for the CLI verbs).
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `journal.db`.
    pub fn journal(&self) -> PathBuf {
        self.root.join("journal.db")
    }

    /// `audit.log`.
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.log")
    }

    /// `control.sock`.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join("control.sock")
    }

    /// `logs/orchestrator.log`.
    pub fn orchestrator_log(&self) -> PathBuf {
        self.root.join("logs/orchestrator.log")
    }

    /// `logs/connections/<connection>.log`.
    pub fn connection_log(&self, connection: &str) -> PathBuf {
        self.root
            .join("logs/connections")
            .join(format!("{connection}.log"))
    }

    /// `logs/agents/<agent>/<instanceKey, escaped>.log`.
    pub fn agent_log(&self, agent: &str, instance_key: &str) -> PathBuf {
        self.root
            .join("logs/agents")
            .join(agent)
            .join(format!("{}.log", escape_key(instance_key)))
    }

    /// `state/connections/<connection>/`.
    pub fn connection_state(&self, connection: &str) -> PathBuf {
        self.root.join("state/connections").join(connection)
    }

    /// `state/agents/<agent>/<instanceKey, escaped>/`.
    pub fn agent_state(&self, agent: &str, instance_key: &str) -> PathBuf {
        self.root
            .join("state/agents")
            .join(agent)
            .join(escape_key(instance_key))
    }
}

/// Makes an instance key safe as one file name, reversibly: `%`, `/`, control
/// characters and a leading `.` become `%XX`; everything else is kept, so
/// `telegram:42` stays readable.
pub fn escape_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, c) in key.char_indices() {
        let escape = c == '%' || c == '/' || c.is_control() || (i == 0 && c == '.');
        if escape {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    // File names are at most 255 bytes; keep room for ".log".
    if out.len() > 200 {
        let mut cut = 180;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        let hash = fnv1a(key.as_bytes());
        out = format!("{}~{hash:016x}", &out[..cut]);
    }
    out
}

/// The instance key an escaped file name stands for (the inverse of [`escape_key`],
/// except for over-long keys, which keep only their cut form).
pub fn unescape_key(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = name
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    if out == [0] {
        return String::new();
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::{escape_key, unescape_key};

    #[test]
    fn keys_become_safe_file_names() {
        let cases = [
            ("telegram:42", "telegram:42"),
            ("webhook:/hooks/a", "webhook:%2Fhooks%2Fa"),
            ("100%", "100%25"),
            ("..", "%2E."),
            ("", "%00"),
            ("a\nb", "a%0Ab"),
        ];
        for (key, want) in cases {
            assert_eq!(escape_key(key), want, "{key:?}");
        }
    }

    #[test]
    fn unescape_inverts_escape() {
        for key in [
            "telegram:42",
            "webhook:/hooks/a",
            "100%",
            "..",
            "",
            "a\nb",
            "ü/ß",
        ] {
            assert_eq!(unescape_key(&escape_key(key)), key, "{key:?}");
        }
    }

    #[test]
    fn escaping_is_injective_on_tricky_pairs() {
        assert_ne!(escape_key("a/b"), escape_key("a%2Fb"));
        let long_a = "x".repeat(300);
        let long_b = format!("{}y", "x".repeat(299));
        assert_ne!(escape_key(&long_a), escape_key(&long_b));
        assert!(escape_key(&long_a).len() <= 200);
    }
}
