//! What `connector.yaml` declares for each event: the properties
//! [`mapping::map`](crate::mapping::map) can set, and which of them every
//! delivery of that event carries.
//!
//! A property is required only where GitHub's event guarantees it:
//! `event` always; `action` when the name has one; `number`, `ref` and
//! `ref_type` on the events that are about an issue/PR/discussion or a ref;
//! `repository` on the events that happen in a repository. The rest
//! (`organization`, `installation`) depend on where the webhook is
//! installed, and `sender` is not in every delivery either (a
//! `code_scanning_alert` GitHub raised itself has none, nor has a global
//! security advisory): optional. Declaring optional where in doubt costs
//! nothing; declaring required wrongly makes the orchestrator refuse real
//! deliveries, and a refused delivery is lost.

use crate::mapping::{NUMBERED, REF_EVENTS, REF_TYPED};

/// Events that always happen in a repository, so the payload names it.
pub const REPOSITORY_SCOPED: &[&str] = &[
    "branch_protection_rule",
    "check_run",
    "check_suite",
    "code_scanning_alert",
    "commit_comment",
    "create",
    "delete",
    "dependabot_alert",
    "deploy_key",
    "deployment",
    "deployment_review",
    "deployment_status",
    "discussion",
    "discussion_comment",
    "fork",
    "gollum",
    "issue_comment",
    "issues",
    "label",
    "member",
    "merge_group",
    "milestone",
    "page_build",
    "public",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "pull_request_review_thread",
    "push",
    "release",
    "repository",
    "repository_dispatch",
    "repository_import",
    "repository_vulnerability_alert",
    "secret_scanning_alert",
    "star",
    "status",
    "team_add",
    "watch",
    "workflow_dispatch",
    "workflow_job",
    "workflow_run",
];

/// A property's declared type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// Any text.
    String,
    /// A decimal number.
    Number,
}

impl Type {
    /// The name in a Connector's `properties.<key>.type`.
    pub fn name(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Number => "number",
        }
    }
}

/// One declared property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared {
    /// The property's key.
    pub name: &'static str,
    /// Its type.
    pub ty: Type,
    /// Whether a delivery may lack it.
    pub optional: bool,
}

/// The properties of the events `event` (an `X-GitHub-Event` value) yields,
/// with or without an action, in the order `connector.yaml` lists them.
pub fn declared(event: &str, has_action: bool) -> Vec<Declared> {
    let is = |list: &[&str]| list.contains(&event);
    let prop = |name, ty, required: bool| Declared {
        name,
        ty,
        optional: !required,
    };
    let mut out = vec![prop("event", Type::String, true)];
    if has_action {
        out.push(prop("action", Type::String, true));
    }
    out.push(prop("repository", Type::String, is(REPOSITORY_SCOPED)));
    out.push(prop("organization", Type::String, false));
    // Not required anywhere: GitHub leaves it out of deliveries no user
    // triggered (code scanning's own alerts, global advisories, GitHub
    // Enterprise's system events), and that set is not documented per event.
    out.push(prop("sender", Type::String, false));
    out.push(prop("installation", Type::String, false));
    if is(NUMBERED) {
        out.push(prop("number", Type::Number, true));
    }
    if is(REF_EVENTS) {
        out.push(prop("ref", Type::String, true));
    }
    if is(REF_TYPED) {
        out.push(prop("ref_type", Type::String, true));
    }
    out
}

/// The properties of `<event>` declared as the fallback for actions not
/// listed: as [`declared`] without an action, plus an optional `action`.
pub fn declared_fallback(event: &str) -> Vec<Declared> {
    let mut out = declared(event, false);
    out.insert(
        1,
        Declared {
            name: "action",
            ty: Type::String,
            optional: true,
        },
    );
    out
}

/// The properties of [`UNKNOWN_EVENT`](crate::mapping::UNKNOWN_EVENT): only
/// what any payload may carry, all but `event` optional.
pub fn declared_unknown() -> Vec<Declared> {
    let prop = |name, optional| Declared {
        name,
        ty: Type::String,
        optional,
    };
    vec![
        prop("event", false),
        prop("action", true),
        prop("repository", true),
        prop("organization", true),
        prop("sender", true),
        prop("installation", true),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations() {
        let names = |d: Vec<Declared>| -> Vec<(&str, bool)> {
            d.into_iter().map(|p| (p.name, p.optional)).collect()
        };
        assert_eq!(
            names(declared("pull_request", true)),
            [
                ("event", false),
                ("action", false),
                ("repository", false),
                ("organization", true),
                ("sender", true),
                ("installation", true),
                ("number", false),
            ]
        );
        assert_eq!(
            names(declared("create", false)),
            [
                ("event", false),
                ("repository", false),
                ("organization", true),
                ("sender", true),
                ("installation", true),
                ("ref", false),
                ("ref_type", false),
            ]
        );
        let advisory = names(declared("security_advisory", true));
        assert!(advisory.contains(&("sender", true)) && advisory.contains(&("repository", true)));
    }
}
