//! A repository named `owner/name`, checked so that it can only ever form
//! its own path under `/repos/`.

use std::fmt;

use connector_sdk::operations::OperationError;

/// `owner/name`, both parts made of letters, digits, `-`, `_` and `.`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Repo {
    /// The owner's login.
    pub owner: String,
    /// The repository's name.
    pub name: String,
}

impl Repo {
    /// Parses `owner/name`; anything else is a `validation_error`.
    pub fn parse(text: &str) -> Result<Self, OperationError> {
        let bad = || {
            OperationError::validation(format!(
                "repo {text:?} is not \"owner/name\" (letters, digits, '-', '_', '.')"
            ))
        };
        let (owner, name) = text.split_once('/').ok_or_else(bad)?;
        let part_ok = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.len() <= 100
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        };
        if !part_ok(owner) || !part_ok(name) {
            return Err(bad());
        }
        Ok(Repo {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// `/repos/<owner>/<name>`.
    pub fn path(&self) -> String {
        format!("/repos/{}/{}", self.owner, self.name)
    }

    /// The key the installation cache files it under (GitHub names are case-insensitive).
    pub fn key(&self) -> String {
        self.to_string().to_ascii_lowercase()
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owner_slash_name() {
        let r = Repo::parse("octo-org/hello.world_1").unwrap();
        assert_eq!(r.path(), "/repos/octo-org/hello.world_1");
        for bad in [
            "", "octo", "/x", "x/", "a/b/c", "../x", "a/..", "a/b?c", "a/b#1", "a b/c",
        ] {
            assert!(Repo::parse(bad).is_err(), "{bad}");
        }
    }
}
