//! HTTP answers every webhook connector gives the same way: errors as
//! `{"error": …}`, the orchestrator's ack as `200`, its refusals as the
//! status a sender knows to retry (or not).

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use connector_sdk::{Accepted, Audit, Context, EmitError, NackKind};

use crate::deadline::BodyTimeout;
use serde_json::json;

/// `status` with `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

/// `200 {"accepted":true,"duplicate":…}`: the orchestrator acked the event.
pub fn accepted(a: Accepted) -> Response {
    let body = json!({"accepted": true, "duplicate": a.duplicate});
    (StatusCode::OK, Json(body)).into_response()
}

/// The answer for a body axum could not read: `413` over the limit, `408`
/// when it did not arrive within `BODY_TIMEOUT`, else `400`.
pub fn unreadable(e: &BytesRejection, limit: usize) -> Response {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("body is over {limit} bytes"),
        );
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(timeout) = c.downcast_ref::<BodyTimeout>() {
            let mut r = error(StatusCode::REQUEST_TIMEOUT, &timeout.to_string());
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        cause = c.source();
    }
    error(StatusCode::BAD_REQUEST, &e.body_text())
}

/// `405` with `Allow: POST`.
pub fn post_only() -> Response {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "only POST is accepted");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

/// `401`: the request's signature was rejected (the details went to the audit log).
pub fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, "request signature rejected")
}

/// The HTTP answer for an event the orchestrator did not accept.
///
/// `overloaded` → 503 and `quota_exceeded` → 429, both with `Retry-After: 1`;
/// `validation_error` → 500 (never 422: senders such as GitHub do not retry
/// a 4xx, so the delivery would be lost; a 500 is retried while the
/// declaration is fixed); other refusals → 502; an event too large to
/// send → 413; the channel gone (usually a restart) → 503 with `Retry-After`.
/// [`refused_audited`] also records a `validation_error` in the audit log.
pub fn refused(e: &EmitError) -> Response {
    let (status, retry_after) = match e {
        EmitError::Nacked {
            kind: NackKind::Overloaded,
            ..
        } => (StatusCode::SERVICE_UNAVAILABLE, true),
        EmitError::Nacked {
            kind: NackKind::QuotaExceeded,
            ..
        } => (StatusCode::TOO_MANY_REQUESTS, true),
        EmitError::Nacked {
            kind: NackKind::ValidationError,
            ..
        } => (StatusCode::INTERNAL_SERVER_ERROR, false),
        EmitError::Nacked { .. } => (StatusCode::BAD_GATEWAY, false),
        EmitError::Unsendable(_) => (StatusCode::PAYLOAD_TOO_LARGE, false),
        EmitError::Closed => (StatusCode::SERVICE_UNAVAILABLE, true),
    };
    let message = match e {
        EmitError::Nacked { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let mut body = json!({"error": message});
    if let EmitError::Nacked { kind, .. } = e {
        body["kind"] = kind.as_str().into();
    }
    let mut r = (status, Json(body)).into_response();
    if retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// [`refused`], and for a `validation_error` an audit record (kind
/// `delivery_refused`, the `scheme`, reason `validation_error: <the
/// orchestrator's message>`, as connector-github writes it) and an error
/// log line: the sender only sees a 500, so the operator must learn from
/// here that a declaration refuses real traffic.
pub fn refused_audited(ctx: &Context, scheme: &str, e: &EmitError) -> Response {
    if let EmitError::Nacked {
        kind: NackKind::ValidationError,
        message,
    } = e
    {
        ctx.audit(Audit {
            kind: "delivery_refused".into(),
            scheme: Some(scheme.into()),
            reason: Some(format!("{}: {message}", NackKind::ValidationError.as_str())),
        });
        ctx.error(format!(
            "the orchestrator refused an event as invalid; answered 500 so the sender retries it: {message}"
        ));
    }
    refused(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nack(kind: NackKind) -> EmitError {
        EmitError::Nacked {
            kind,
            message: "why".into(),
        }
    }

    #[test]
    fn refusals_map_to_statuses() {
        let cases = [
            (nack(NackKind::Overloaded), 503, Some("1")),
            (nack(NackKind::QuotaExceeded), 429, Some("1")),
            (nack(NackKind::ValidationError), 500, None),
            (nack(NackKind::Transient), 502, None),
            (nack(NackKind::Permanent), 502, None),
            (EmitError::Closed, 503, Some("1")),
            (EmitError::Unsendable("too big".into()), 413, None),
        ];
        for (e, status, retry_after) in cases {
            let r = refused(&e);
            assert_eq!(r.status().as_u16(), status, "{e:?}");
            let got = r
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap());
            assert_eq!(got, retry_after, "{e:?}");
        }
    }
}
