//! The message text of a GitHub event: one short line a person (or a
//! model) can read, e.g. `ada opened pull request #2: Update the README`.

use serde_json::Value;

use crate::mapping;

/// Longest quoted title or comment line, in characters.
const MAX_QUOTE: usize = 200;

/// A one-line summary of `payload`, delivered as `event`.
pub fn summary(event: &str, p: &Value) -> String {
    let who = p["sender"]["login"].as_str().unwrap_or("someone");
    let action = words(p["action"].as_str().unwrap_or(""));
    let number = mapping::number(event, p).unwrap_or_default();
    match event {
        "ping" => format!(
            "ping: {}",
            p["zen"].as_str().unwrap_or("webhook configured")
        ),
        "push" => push(who, p),
        "create" | "delete" => format!(
            "{who} {event}d {} {}",
            p["ref_type"].as_str().unwrap_or("ref"),
            p["ref"].as_str().unwrap_or("?")
        ),
        "issues" => titled(
            format!("{who} {action} issue #{number}"),
            &p["issue"]["title"],
        ),
        "pull_request" => titled(
            format!("{who} {action} pull request #{number}"),
            &p["pull_request"]["title"],
        ),
        "discussion" => titled(
            format!("{who} {action} discussion #{number}"),
            &p["discussion"]["title"],
        ),
        "issue_comment" => {
            let on = if p["issue"]["pull_request"].is_object() {
                "pull request"
            } else {
                "issue"
            };
            comment(who, &action, &format!("{on} #{number}"), p)
        }
        "pull_request_review_comment" => {
            comment(who, &action, &format!("pull request #{number}"), p)
        }
        "discussion_comment" => comment(who, &action, &format!("discussion #{number}"), p),
        "pull_request_review" => titled(
            format!("{who} {action} a review on pull request #{number}"),
            &p["review"]["state"],
        ),
        "pull_request_review_thread" => {
            format!("{who} {action} a review thread on pull request #{number}")
        }
        "release" => titled(
            format!(
                "{who} {action} release {}",
                p["release"]["tag_name"].as_str().unwrap_or("?")
            ),
            &p["release"]["name"],
        ),
        _ => {
            let what = if action.is_empty() {
                words(event)
            } else {
                format!("{} {action}", words(event))
            };
            match p["repository"]["full_name"].as_str() {
                Some(repo) => format!("{what} by {who} in {repo}"),
                None => format!("{what} by {who}"),
            }
        }
    }
}

fn push(who: &str, p: &Value) -> String {
    let r = p["ref"].as_str().unwrap_or("?");
    if p["deleted"] == true {
        return format!("{who} deleted {r}");
    }
    let n = p["commits"].as_array().map_or(0, Vec::len);
    let commits = if n == 1 { "commit" } else { "commits" };
    titled(
        format!("{who} pushed {n} {commits} to {r}"),
        &p["head_commit"]["message"],
    )
}

fn comment(who: &str, action: &str, on: &str, p: &Value) -> String {
    let head = match action {
        "created" => format!("{who} commented on {on}"),
        other => format!("{who} {other} a comment on {on}"),
    };
    titled(head, &p["comment"]["body"])
}

/// `head: <first line of quote>` when there is a quote, else `head`.
fn titled(head: String, quote: &Value) -> String {
    let line = quote
        .as_str()
        .and_then(|q| q.lines().map(str::trim).find(|l| !l.is_empty()));
    match line {
        Some(line) => format!("{head}: {}", clip(line)),
        None => head,
    }
}

/// At most [`MAX_QUOTE`] characters, with `…` when cut.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTE) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// `ready_for_review` → `ready for review`.
fn words(s: &str) -> String {
    s.replace('_', " ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn summaries() {
        let sender = json!({"login": "ada"});
        let cases = [
            (
                "ping",
                json!({"zen": "Keep it logically awesome."}),
                "ping: Keep it logically awesome.",
            ),
            (
                "push",
                json!({"ref": "refs/heads/main", "sender": sender, "commits": [{}],
                       "head_commit": {"message": "Fix it\n\nbecause"}}),
                "ada pushed 1 commit to refs/heads/main: Fix it",
            ),
            (
                "push",
                json!({"ref": "refs/tags/v1", "deleted": true}),
                "someone deleted refs/tags/v1",
            ),
            (
                "create",
                json!({"ref": "v1", "ref_type": "tag", "sender": sender}),
                "ada created tag v1",
            ),
            (
                "issue_comment",
                json!({"action": "created", "issue": {"number": 3, "pull_request": {}},
                       "comment": {"body": "LGTM"}, "sender": sender}),
                "ada commented on pull request #3: LGTM",
            ),
            (
                "pull_request",
                json!({"action": "ready_for_review", "number": 4,
                       "pull_request": {"number": 4, "title": "T"}, "sender": sender}),
                "ada ready for review pull request #4: T",
            ),
            (
                "check_run",
                json!({"action": "completed", "repository": {"full_name": "o/r"}, "sender": sender}),
                "check run completed by ada in o/r",
            ),
            ("fork", json!({}), "fork by someone"),
        ];
        for (event, payload, want) in cases {
            assert_eq!(summary(event, &payload), want, "{event}");
        }
    }

    #[test]
    fn long_quotes_are_clipped() {
        let title = "x".repeat(300);
        let s = titled("head".into(), &json!(title));
        assert_eq!(s.chars().count(), "head: ".len() + MAX_QUOTE + 1);
        assert!(s.ends_with('…'));
        assert_eq!(titled("head".into(), &json!("\n \n")), "head");
    }
}
