//! The operations agents invoke (declared, with their schemas, in
//! `connector.yaml`): `createIssueComment`, `addLabels`, `createCheckRun`,
//! `updateCheckRun`. Each checks what the schema cannot (the repository
//! name, the numbers), gets a token from [`Auth`], makes one request, and
//! answers the few fields an agent needs.

use std::sync::Arc;

use connector_sdk::Context;
use connector_sdk::operations::{OperationCall, OperationError, OperationOk};
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::api::{Http, Reply};
use crate::auth::Auth;
use crate::repo::Repo;

/// What every operation needs: the HTTP client and the credentials.
#[derive(Debug)]
pub struct Api {
    /// The client for `API_BASE`.
    pub http: Http,
    /// How calls authenticate.
    pub auth: Auth,
}

impl Api {
    /// `method path` with `body`, authenticated for `repo`, within the call's deadline.
    async fn send(
        &self,
        call: &OperationCall,
        repo: &Repo,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Reply, OperationError> {
        let token = self.auth.token(&self.http, repo, call.remaining()).await?;
        let result = self
            .http
            .send(method, path, &token, Some(body), call.remaining())
            .await;
        if let Err(e) = &result
            && e.provider_status == Some(401)
        {
            self.auth.refused(&token).await;
        }
        result
    }
}

/// Registers every operation's handler on `ctx`.
pub fn register(ctx: &Context, api: Arc<Api>) {
    let ops = ctx.operations();
    let a = api.clone();
    ops.on("createIssueComment", move |call| {
        let api = a.clone();
        async move { create_issue_comment(&api, &call).await }
    });
    let a = api.clone();
    ops.on("addLabels", move |call| {
        let api = a.clone();
        async move { add_labels(&api, &call).await }
    });
    let a = api.clone();
    ops.on("createCheckRun", move |call| {
        let api = a.clone();
        async move { create_check_run(&api, &call).await }
    });
    ops.on("updateCheckRun", move |call| {
        let api = api.clone();
        async move { update_check_run(&api, &call).await }
    });
}

/// `POST /repos/{owner}/{repo}/issues/{issueNumber}/comments` with `{body}`
/// (an issue or a pull request): `{id, url}` of the comment.
async fn create_issue_comment(
    api: &Api,
    call: &OperationCall,
) -> Result<OperationOk, OperationError> {
    let repo = repo(&call.input)?;
    let n = number(&call.input, "issueNumber")?;
    let body = string(&call.input, "body")?;
    let path = format!("{}/issues/{n}/comments", repo.path());
    let reply = api
        .send(call, &repo, Method::POST, &path, &json!({ "body": body }))
        .await?;
    let out = json!({
        "id": reply.json["id"],
        "url": reply.json["html_url"],
    });
    Ok(OperationOk::new(out).provider_status(reply.status))
}

/// `POST /repos/{owner}/{repo}/issues/{issueNumber}/labels` with `{labels}`:
/// `{labels}`, the names the issue has now.
async fn add_labels(api: &Api, call: &OperationCall) -> Result<OperationOk, OperationError> {
    let repo = repo(&call.input)?;
    let n = number(&call.input, "issueNumber")?;
    let labels: Vec<&str> = call.input["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if labels.is_empty() {
        return Err(OperationError::validation(
            "input.labels must name at least one label",
        ));
    }
    let path = format!("{}/issues/{n}/labels", repo.path());
    let reply = api
        .send(
            call,
            &repo,
            Method::POST,
            &path,
            &json!({ "labels": labels }),
        )
        .await?;
    let names: Vec<Value> = reply
        .json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["name"].as_str().map(Value::from))
        .collect();
    Ok(OperationOk::new(json!({ "labels": names })).provider_status(reply.status))
}

/// `POST /repos/{owner}/{repo}/check-runs`: `{id, url, status, conclusion}`.
async fn create_check_run(api: &Api, call: &OperationCall) -> Result<OperationOk, OperationError> {
    let repo = repo(&call.input)?;
    string(&call.input, "name")?;
    string(&call.input, "headSha")?;
    let path = format!("{}/check-runs", repo.path());
    let reply = api
        .send(
            call,
            &repo,
            Method::POST,
            &path,
            &check_run_body(&call.input),
        )
        .await?;
    Ok(check_run_out(reply))
}

/// `PATCH /repos/{owner}/{repo}/check-runs/{checkRunId}`: `{id, url, status, conclusion}`.
async fn update_check_run(api: &Api, call: &OperationCall) -> Result<OperationOk, OperationError> {
    let repo = repo(&call.input)?;
    let id = number(&call.input, "checkRunId")?;
    let path = format!("{}/check-runs/{id}", repo.path());
    let reply = api
        .send(
            call,
            &repo,
            Method::PATCH,
            &path,
            &check_run_body(&call.input),
        )
        .await?;
    Ok(check_run_out(reply))
}

/// The check run's fields as GitHub names them: every input key but `repo`
/// and `checkRunId`, camelCase to snake_case (`headSha` → `head_sha`);
/// `output` is passed as it is (GitHub's own names).
fn check_run_body(input: &Value) -> Value {
    let mut body = Map::new();
    for (k, v) in input.as_object().into_iter().flatten() {
        if k != "repo" && k != "checkRunId" {
            body.insert(snake_case(k), v.clone());
        }
    }
    Value::Object(body)
}

fn check_run_out(reply: Reply) -> OperationOk {
    let j = &reply.json;
    let out = json!({
        "id": j["id"],
        "url": j["html_url"],
        "status": j["status"],
        "conclusion": j["conclusion"],
    });
    OperationOk::new(out).provider_status(reply.status)
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn repo(input: &Value) -> Result<Repo, OperationError> {
    Repo::parse(string(input, "repo")?)
}

fn string<'a>(input: &'a Value, key: &str) -> Result<&'a str, OperationError> {
    input[key]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            OperationError::validation(format!("input.{key} must be a non-empty string"))
        })
}

/// A positive number, given as a number or as decimal text (event
/// properties are text: `properties.number` can be passed as it is).
fn number(input: &Value, key: &str) -> Result<u64, OperationError> {
    let n = match &input[key] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.filter(|n| *n > 0).ok_or_else(|| {
        OperationError::validation(format!("input.{key} must be a positive whole number"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_run_fields_are_githubs() {
        let input = json!({
            "repo": "o/r", "checkRunId": 4, "name": "lint", "headSha": "abc",
            "detailsUrl": "https://x", "status": "completed", "conclusion": "success",
            "output": {"title": "ok", "summary": "all good"}
        });
        assert_eq!(
            check_run_body(&input),
            json!({
                "name": "lint", "head_sha": "abc", "details_url": "https://x",
                "status": "completed", "conclusion": "success",
                "output": {"title": "ok", "summary": "all good"}
            })
        );
    }

    #[test]
    fn numbers_as_numbers_or_text() {
        assert_eq!(number(&json!({"n": 7}), "n").unwrap(), 7);
        assert_eq!(number(&json!({"n": "12"}), "n").unwrap(), 12);
        for bad in [
            json!({"n": 0}),
            json!({"n": -1}),
            json!({"n": "x"}),
            json!({}),
        ] {
            assert!(number(&bad, "n").is_err(), "{bad}");
        }
    }
}
