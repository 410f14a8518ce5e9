//! `connector-github`: receives GitHub webhook deliveries over HTTP, checks
//! each one's `X-Hub-Signature-256` with the secret `WEBHOOK_SECRET`, and
//! emits it as the event `<X-GitHub-Event>[.<action>]` (`pull_request.opened`,
//! `push`, `issues.labeled`…) with `repository`, `sender`, `action`,
//! `number` or `ref` properties and an instance key per issue, pull request
//! or ref. `X-GitHub-Delivery` is the dedupe key. A delivery is answered
//! `200` only once the orchestrator has it (`ping`: `{"pong":true}`); a bad
//! signature `401` with an audit record. Serves the operations
//! `createIssueComment`, `addLabels`, `createCheckRun` and `updateCheckRun`
//! against `API_BASE` with the secret `GITHUB_TOKEN` or as a GitHub App
//! (`APP_ID`, `PRIVATE_KEY`). Config: `HOST`, `PORT`, `MAX_BODY_BYTES`,
//! `API_BASE`, `APP_ID`, `INSTALLATION_ID`; see README.md beside this crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    connector_sdk::run(connector_github::run)
}
