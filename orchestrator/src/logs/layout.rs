//! Where things live in the state directory (docs/architecture.md, The state directory).

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The state directory and the paths inside it.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Creates the directory, its `logs/` and `state/` folders and
    /// `state/agents/<agent>/` for each of `agents`, and brings whatever was
    /// there already to the state directory's modes (files 0600, directories
    /// 0700, the way to each child's stateDir 0711: see [`super::private`]).
    pub fn create<'a>(
        root: &Path,
        agents: impl IntoIterator<Item = &'a String>,
    ) -> io::Result<Self> {
        use super::private::{DIR, PASS_THROUGH, ensure_dir};
        ensure_dir(root, PASS_THROUGH)?;
        for (sub, mode) in [
            ("logs", DIR),
            ("logs/connections", DIR),
            ("logs/agents", DIR),
            ("state", PASS_THROUGH),
            ("state/connections", PASS_THROUGH),
            ("state/agents", PASS_THROUGH),
        ] {
            ensure_dir(&root.join(sub), mode)?;
        }
        for agent in agents {
            ensure_dir(&root.join("state/agents").join(agent), PASS_THROUGH)?;
        }
        super::private::tighten(root)?;
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

    /// `orchestrator.lock`: held by the orchestrator running here (see [`super::lock`]).
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("orchestrator.lock")
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

/// Escaped names longer than this are cut and hashed.
const MAX_NAME: usize = 200;
/// How much of the escaped name a long key keeps before its hash.
const LONG_PREFIX: usize = 160;

/// Makes an instance key safe as one file name, injectively (two keys never
/// share a name): `%`, `/`, `~`, control characters and a leading `.` become
/// `%XX`; everything else is kept, so `telegram:42` stays readable. The empty
/// key is `~`. An escaped name over 200 bytes is cut, and `~` and the SHA-256
/// of the exact key (128 bits, hex) appended: an unescaped `~` only ever
/// appears in these two forms, so no short key can spell a long one's name.
pub fn escape_key(key: &str) -> String {
    if key.is_empty() {
        return "~".into();
    }
    let mut out = String::with_capacity(key.len());
    for (i, c) in key.char_indices() {
        let escape = c == '%' || c == '/' || c == '~' || c.is_control() || (i == 0 && c == '.');
        if escape {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    // File names are at most 255 bytes; keep room for ".log".
    if out.len() > MAX_NAME {
        let mut cut = LONG_PREFIX;
        // Not inside a character, nor inside a %XX.
        let bytes = out.as_bytes();
        while !out.is_char_boundary(cut) || bytes[cut - 1] == b'%' || bytes[cut - 2] == b'%' {
            cut -= 1;
        }
        let digest = Sha256::digest(key.as_bytes());
        let mut hash = String::with_capacity(32);
        for b in &digest[..16] {
            hash.push_str(&format!("{b:02x}"));
        }
        out = format!("{}~{hash}", &out[..cut]);
    }
    out
}

/// The instance key an escaped file name stands for (the inverse of
/// [`escape_key`], except for over-long keys, which keep only their cut form
/// and hash).
pub fn unescape_key(name: &str) -> String {
    if name == "~" {
        return String::new();
    }
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
    String::from_utf8_lossy(&out).into_owned()
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
            ("", "~"),
            ("\0", "%00"),
            ("a\nb", "a%0Ab"),
            ("~user", "%7Euser"),
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
            "\0",
            "a\nb",
            "ü/ß",
            "~",
            "a~b",
            "%7E",
        ] {
            assert_eq!(unescape_key(&escape_key(key)), key, "{key:?}");
        }
    }

    /// The pairs the attack in issue 9 used, and their relatives.
    #[test]
    fn colliding_pairs_from_the_attack_now_differ() {
        let long = "x".repeat(300);
        let long_name = escape_key(&long);
        let pairs = [
            // A short key spelled exactly like a long key's name.
            (long.clone(), long_name.clone()),
            (String::new(), "\0".to_string()),
            (String::new(), "~".to_string()),
            (String::new(), "%00".to_string()),
            ("a/b".into(), "a%2Fb".into()),
            ("~".into(), "%7E".into()),
            (long.clone(), format!("{}y", "x".repeat(299))),
        ];
        for (a, b) in pairs {
            assert_ne!(escape_key(&a), escape_key(&b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn long_keys_hash_their_exact_bytes() {
        // Same first 160 escaped bytes, different tails: different names.
        let base = "é".repeat(150);
        let names: Vec<String> = ["", "a", "b", "%", "/"]
            .iter()
            .map(|tail| escape_key(&format!("{base}{tail}")))
            .collect();
        for (i, a) in names.iter().enumerate() {
            assert!(a.len() <= 200, "{a}");
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // The hash is SHA-256 of the key, cut to 128 bits.
        let name = escape_key(&"x".repeat(300));
        let (prefix, hash) = name.split_once('~').unwrap();
        assert_eq!(prefix, "x".repeat(160));
        assert_eq!(hash.len(), 32);
        // The cut never splits a %XX escape.
        let name = escape_key(&"/".repeat(100));
        let (prefix, _) = name.split_once('~').unwrap();
        assert_eq!(prefix.len() % 3, 0, "{prefix}");
        assert_eq!(unescape_key(prefix), "/".repeat(prefix.len() / 3));
    }

    /// Over many generated keys, no two distinct keys share a name.
    #[test]
    fn escaping_is_injective_over_generated_keys() {
        let alphabet = ["", "a", "%", "~", "/", ".", "\0", "%7E", "~0", "é", "x"];
        let mut keys = std::collections::BTreeSet::new();
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    keys.insert(format!("{a}{b}{c}"));
                }
            }
        }
        let long: Vec<String> = keys
            .iter()
            .map(|k| format!("{}{k}", "z".repeat(200)))
            .collect();
        let mut names = std::collections::BTreeMap::new();
        for key in keys.iter().chain(&long) {
            let name = escape_key(key);
            assert!(!name.contains('/') && name != "." && name != ".." && !name.starts_with('.'));
            if let Some(other) = names.insert(name.clone(), key.clone()) {
                panic!("{other:?} and {key:?} both map to {name:?}");
            }
        }
        // And each short key's name is a key spelled differently: feeding the
        // names back in as keys gives new names.
        for name in names.keys() {
            let again = escape_key(name);
            if let Some(other) = names.get(&again) {
                assert_eq!(other, name, "{name:?} collides with key {other:?}");
            }
        }
    }
}
