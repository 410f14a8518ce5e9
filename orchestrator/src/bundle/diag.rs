//! What the bundle code reports: one [`Diagnostic`] per problem, with its place.

use std::fmt;
use std::sync::Arc;

use serde_saphyr::Location;

use super::model::Place;

/// One problem in a bundle, pointing at the YAML that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// file:line:column, when the problem has a place.
    pub place: Option<Place>,
    /// `Kind/name` of the resource it belongs to, when known.
    pub resource: Option<String>,
    /// What is wrong: lowercase, no trailing period.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic that belongs to no file (an empty bundle, an unreadable directory).
    pub fn global(message: impl Into<String>) -> Self {
        Self {
            place: None,
            resource: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(place) = &self.place {
            write!(f, "{place}: ")?;
        }
        if let Some(resource) = &self.resource {
            write!(f, "{resource}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Builds a [`Place`] from a serde-saphyr location in `file`.
pub(crate) fn place(file: &Arc<str>, at: &Location) -> Place {
    Place {
        file: Arc::clone(file),
        line: usize::try_from(at.line()).unwrap_or(usize::MAX),
        column: usize::try_from(at.column()).unwrap_or(usize::MAX),
    }
}

/// Where diagnostics go while one document is read: the file and the
/// resource are fixed, so every call only says where and what.
#[derive(Debug)]
pub(crate) struct Cx<'d> {
    /// The file being read.
    pub file: Arc<str>,
    /// The document's kind, for labels like "Connection spec".
    pub kind: &'static str,
    /// `Kind/name`, or just `Kind` until the name is known to be good.
    pub resource: Option<String>,
    /// Shared sink, in the order problems were found.
    pub out: &'d mut Vec<Diagnostic>,
}

impl Cx<'_> {
    /// The [`Place`] of a location in the current file.
    pub fn place(&self, at: &Location) -> Place {
        place(&self.file, at)
    }

    /// Records a problem at `at`.
    pub fn error(&mut self, at: &Location, message: impl Into<String>) {
        let place = Some(self.place(at));
        self.out.push(Diagnostic {
            place,
            resource: self.resource.clone(),
            message: message.into(),
        });
    }
}

/// The candidate closest to `word` (case aside), if it is close enough to be
/// what was meant: at most one edit per three characters, at least one.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance between `a` and `b` by characters, a swap of two
/// neighbours counting as one edit (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod suggest_tests {
    use super::{did_you_mean, edit_distance};

    #[test]
    fn distances() {
        for (a, b, d) in [
            ("", "", 0),
            ("a", "", 1),
            ("kitten", "sitting", 3),
            ("logger", "loger", 1),
            ("agnet", "agent", 1),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
        }
    }

    #[test]
    fn suggestions_are_close_or_none() {
        let kinds = ["Connector", "Connection", "Swarm", "Agent", "Secret"];
        assert_eq!(did_you_mean("Conector", kinds), Some("Connector"));
        assert_eq!(did_you_mean("connection", kinds), Some("Connection"));
        assert_eq!(did_you_mean("agnet", kinds), Some("Agent"));
        assert_eq!(did_you_mean("Package", kinds), None);
        assert_eq!(did_you_mean("loger", ["logger", "handler"]), Some("logger"));
        assert_eq!(did_you_mean("x", ["logger"]), None);
    }
}
