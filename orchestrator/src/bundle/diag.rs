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
