//! The GitHub connector's mapping: `X-GitHub-Event` and a payload (JSON, or
//! a form with `payload=`) in, one event out; and the replay check's reading
//! of the payload's time.
//!
//! Input, separated by 0xFF: the event name, the clock (8 bytes), the body.
//! The first byte of the body part says form (odd) or JSON (even).
//! Contract: no panic; the event's name is what `event_name` says (a
//! declared one or `unknown_event`); its `event` property is the header's
//! name; it has an instance key, its payload is the body, and it survives
//! both wire encodings; the replay check answers for any payload and clock.

use std::time::Duration;

use connector_github::{mapping, replay};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let p = fuzz::parts(data, 3);
        let Some(event) = fuzz::text(p[0]) else {
            return;
        };
        let event = event.trim();
        if event.is_empty() {
            return; // the server refuses a missing X-GitHub-Event first
        }
        let now = fuzz::clock(p[1]);
        let Some((&form, body)) = p[2].split_first() else {
            return;
        };
        let json = if form & 1 == 1 {
            form_urlencoded::parse(body)
                .find(|(k, _)| k == "payload")
                .and_then(|(_, v)| serde_json::from_str(&v).ok())
        } else {
            fuzz::json(body)
        };
        let Some(payload) = json else {
            return;
        };
        let _ = replay::payload_time(&payload);
        for max_age in [Duration::ZERO, Duration::from_secs(3600), Duration::MAX] {
            let _ = replay::too_old(&payload, max_age, now);
        }
        let ev = mapping::map(event, &payload);
        assert_eq!(
            ev.name,
            mapping::event_name(event, &payload),
            "the event's name"
        );
        assert!(
            ev.name == mapping::UNKNOWN_EVENT
                || ev.name == event
                || ev.name.starts_with(&format!("{event}.")),
            "the name comes from the header: {} for {event}",
            ev.name
        );
        assert_eq!(
            ev.properties.get("event").map(String::as_str),
            Some(event),
            "the event property"
        );
        assert!(ev.instance_key.is_some(), "every event has an instance key");
        assert_eq!(
            ev.payload.as_ref().map(|j| &j.0),
            Some(&payload),
            "the payload is the body"
        );
        fuzz::assert_event_travels(&ev);
    });
}
