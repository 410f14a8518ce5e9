//! `connector-webhook`: every HTTP `POST` of a JSON body becomes one event,
//! answered `200` only once the orchestrator has made it durable.
//!
//! # Config (all values are strings)
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `SIGNATURE` | required | `github`, `stripe`, `slack`, `standard-webhooks`, `notion`, `discord`, `hmac-sha256`, or `none` (explicitly unsigned). Missing: exit 78 (fail closed) |
//! | `SIGNATURE_HEADER` | `X-Signature` | `hmac-sha256` only: the header with the signature |
//! | `SIGNATURE_ENCODING` | `hex` | `hmac-sha256` only: `hex` or `base64` |
//! | `SIGNATURE_PREFIX` | — | `hmac-sha256` only: text before the signature, e.g. `sha256=` |
//! | `REPLAY_WINDOW` | `5m` | how far a signed timestamp may be from now (stripe, slack, standard-webhooks, discord) |
//! | `HOST` | `127.0.0.1` | address to bind |
//! | `PORT` | `8080` | port to bind; `0` picks a free one |
//! | `MAX_BODY_BYTES` | `1048576` | larger bodies get `413` |
//! | `HEADER_TIMEOUT` | `10s` | headers complete within this of accept (or of a request's first byte), else the connection is closed |
//! | `BODY_TIMEOUT` | `30s` | the whole body within this of the headers, else `408` and close |
//! | `IDLE_TIMEOUT` | `60s` | a kept-alive connection idle this long is closed |
//! | `MAX_CONNECTIONS` | `1024` | connections at once; more are closed at accept, counted and logged |
//! | `EVENT_NAME` | `webhook` | the event name when nothing below names one |
//! | `EVENT_POINTER` | — | JSON pointer into the body; a non-empty string there is the event name |
//! | `EVENT_HEADER` | — | a header whose value is the event name (after `EVENT_POINTER`) |
//! | `INSTANCE_KEY_POINTER` | — | JSON pointer for the instance key; without it (or its value) `webhook:<request path>` |
//! | `TEXT_POINTER` | — | JSON pointer for the message text; without it (or its value) the whole body as compact JSON |
//! | `PROPERTIES` | — | `name=/json/pointer` pairs, comma-separated; each present, non-null value becomes a string property (numbers and booleans printed, arrays and objects as compact JSON) |
//! | `DEDUPE_HEADER` | — | a header whose value is the emit's dedupe key; default: the scheme's delivery id |
//! | `OUTBOUND_URL` | — | where the `send` operation POSTs; it never sends elsewhere |
//!
//! Secret: `WEBHOOK_SECRET` (for `discord`, the application's public key in
//! hex), required by every scheme but `none`; it arrives in `init`.
//! `OUTBOUND_SECRET` (optional, `whsec_…`): `send` signs with it.
//!
//! # Operations
//!
//! `send`: `input.body` POSTed as JSON to `OUTBOUND_URL`, signed the
//! Standard Webhooks way with `OUTBOUND_SECRET` when set; see README.md.
//!
//! # Answers
//!
//! `200 {"accepted":true,"duplicate":bool}` after the ack (Discord: an
//! interaction response; its PING `{"type":1}` is answered `{"type":1}`);
//! `401` signature rejected (and an audit record); `400` body not
//! JSON; `408` body not complete within `BODY_TIMEOUT`; `413` body too large; `405` not a POST; `503` + `Retry-After: 1`
//! when the orchestrator is overloaded or unreachable; `429` +
//! `Retry-After: 1` over quota; `500` (and an audit record) the event does not validate; `502`
//! other refusals. `GET /healthz` answers `200`.
//!
//! Once listening it writes the bound address (`127.0.0.1:39211`) to
//! `<stateDir>/address` and logs `listening on <addr>`.

use std::process::ExitCode;

fn main() -> ExitCode {
    connector_sdk::run(connector_webhook::run)
}
