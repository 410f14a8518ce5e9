//! `MAX_DELIVERY_AGE`: GitHub signs no timestamp, so a captured delivery
//! re-sent under a new `X-GitHub-Delivery` still verifies. What a payload
//! does carry is the time of what it is about: `head_commit.timestamp`, the
//! `created_at`/`updated_at` of its subject (the comment, issue, pull
//! request, check run, alert…). A delivery whose newest such time is older
//! than `MAX_DELIVERY_AGE` is refused; one without any is let through (there
//! is nothing to judge it by).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Where a payload says when its subject last changed; the newest found counts.
pub const TIMESTAMPS: &[&str] = &[
    "/head_commit/timestamp",
    "/merge_group/head_commit/timestamp",
    "/comment/created_at",
    "/comment/updated_at",
    "/review/submitted_at",
    "/issue/updated_at",
    "/pull_request/updated_at",
    "/discussion/updated_at",
    "/answer/updated_at",
    "/check_run/started_at",
    "/check_run/completed_at",
    "/check_suite/updated_at",
    "/workflow_run/updated_at",
    "/workflow_job/created_at",
    "/workflow_job/started_at",
    "/workflow_job/completed_at",
    "/release/created_at",
    "/release/published_at",
    "/deployment/updated_at",
    "/deployment_status/updated_at",
    "/alert/created_at",
    "/alert/updated_at",
    "/alert/fixed_at",
    "/alert/dismissed_at",
    "/milestone/updated_at",
    "/project/updated_at",
    "/project_card/updated_at",
    "/project_column/updated_at",
    "/projects_v2_item/updated_at",
    "/package/updated_at",
    "/registry_package/updated_at",
    "/security_advisory/updated_at",
    "/sponsorship/created_at",
    "/rule/updated_at",
    "/build/updated_at",
    "/key/created_at",
    "/hook/updated_at",
    "/installation/updated_at",
    "/forkee/created_at",
    "/starred_at",
    "/created_at",
    "/updated_at",
];

/// The newest of the payload's [`TIMESTAMPS`] (RFC 3339 text, or epoch seconds).
pub fn payload_time(payload: &Value) -> Option<SystemTime> {
    TIMESTAMPS
        .iter()
        .filter_map(|p| match payload.pointer(p)? {
            Value::String(s) => crate::time::parse(s),
            Value::Number(n) => Some(UNIX_EPOCH + Duration::from_secs(n.as_u64()?)),
            _ => None,
        })
        .max()
}

/// `Some(age)` when the payload's time is older than `max_age` at `now`.
pub fn too_old(payload: &Value, max_age: Duration, now: SystemTime) -> Option<Duration> {
    let age = now.duration_since(payload_time(payload)?).ok()?;
    (age > max_age).then_some(age)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(text: &str) -> SystemTime {
        crate::time::parse(text).unwrap()
    }

    #[test]
    fn the_newest_subject_time_counts() {
        let p = json!({
            "issue": {"created_at": "2019-01-01T00:00:00Z", "updated_at": "2019-05-15T15:20:00Z"},
            "comment": {"created_at": "2019-05-15T15:20:21Z", "updated_at": "2019-05-15T15:20:21Z"},
            "repository": {"pushed_at": 1_700_000_000u64, "updated_at": "2023-01-01T00:00:00Z"}
        });
        assert_eq!(
            payload_time(&p),
            Some(at("2019-05-15T15:20:21Z")),
            "the repository does not count"
        );
        let push = json!({"head_commit": {"timestamp": "2019-05-15T11:20:30-04:00"}});
        assert_eq!(payload_time(&push), Some(at("2019-05-15T15:20:30Z")));
        assert_eq!(payload_time(&json!({"zen": "x"})), None);
    }

    #[test]
    fn older_than_the_limit_is_too_old() {
        let p = json!({"comment": {"created_at": "2019-05-15T15:20:21Z"}});
        let hour = Duration::from_secs(3600);
        let fresh = at("2019-05-15T15:50:00Z");
        assert_eq!(too_old(&p, hour, fresh), None);
        let later = at("2019-05-15T17:20:21Z");
        assert_eq!(too_old(&p, hour, later), Some(2 * hour));
        assert_eq!(
            too_old(&json!({}), hour, later),
            None,
            "nothing to judge by"
        );
    }
}
