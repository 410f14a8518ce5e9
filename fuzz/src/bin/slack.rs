//! The Slack connector's mapping, each of the three bodies Slack posts:
//! an Events API callback (JSON), a slash command (form) and an
//! interaction (form with `payload=<JSON>`), routed by the body as the
//! server routes it. Payload in, an event or a clean refusal out.
//!
//! Input: one byte (bit 0: form-encoded), then the body. Contract: no panic;
//! a refusal says why; an event's properties are the ones its name
//! declares; the payload never carries the verification token or a
//! `response_url`; the event survives both wire encodings.

use connector_sdk::Event;
use connector_slack::commands::{self, Form};
use connector_slack::events::{self, WITHHELD};
use connector_slack::interactions;

fn common(event: &Event) {
    if let Some(payload) = event.payload.as_ref().and_then(|p| p.0.as_object()) {
        for key in WITHHELD {
            assert!(
                !payload.contains_key(*key),
                "{key} is withheld from the payload"
            );
        }
    }
    assert!(
        event.instance_key.is_some(),
        "every event has an instance key"
    );
    fuzz::assert_event_travels(event);
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&pick, body)) = data.split_first() else {
            return;
        };
        if pick & 1 == 0 {
            let Some(json) = fuzz::json(body) else {
                return;
            };
            match events::map_callback(&json) {
                Ok(mapped) => {
                    let allowed = events::properties_of(&mapped.event.name);
                    for key in mapped.event.properties.keys() {
                        assert!(
                            allowed.contains(&key.as_str()),
                            "{key} is not a property of {}",
                            mapped.event.name
                        );
                    }
                    common(&mapped.event);
                }
                Err(e) => assert!(!e.is_empty(), "a refusal says why"),
            }
            return;
        }
        let payload = form_urlencoded_payload(body);
        match payload {
            Some(payload) => {
                let Ok(json) = serde_json::from_str(&payload) else {
                    return;
                };
                match interactions::map_payload(&json) {
                    Ok(mapped) => {
                        for key in mapped.event.properties.keys() {
                            assert!(
                                interactions::PROPERTIES.contains(&key.as_str()),
                                "{key} is not an interaction property"
                            );
                        }
                        common(&mapped.event);
                    }
                    Err(e) => assert!(!e.is_empty(), "a refusal says why"),
                }
            }
            None => match commands::parse(body) {
                Ok(Form::Command { event, .. }) => common(&event),
                Ok(Form::SslCheck) => {}
                Err(e) => assert!(!e.is_empty(), "a refusal says why"),
            },
        }
    });
}

/// The `payload` field of a form body, as the server finds it.
fn form_urlencoded_payload(body: &[u8]) -> Option<String> {
    url_form(body)
        .into_iter()
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v)
}

fn url_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}
