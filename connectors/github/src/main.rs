//! `connector-github`: receives GitHub webhook deliveries over HTTP, checks
//! each one's `X-Hub-Signature-256` with the secret `WEBHOOK_SECRET`, and
//! emits it as the event `<X-GitHub-Event>[.<action>]` (`pull_request.opened`,
//! `push`, `issues.labeled`…) with `repository`, `sender`, `action`,
//! `number` or `ref` properties and an instance key per issue, pull request
//! or ref. `X-GitHub-Delivery` is the dedupe key. A delivery is answered
//! `200` only once the orchestrator has it (`ping`: `{"pong":true}`); a bad
//! signature `401` with an audit record. Config: `HOST`, `PORT`,
//! `MAX_BODY_BYTES`; see README.md beside this crate.

use std::process::ExitCode;

fn main() -> ExitCode {
    connector_sdk::run(connector_github::run)
}
