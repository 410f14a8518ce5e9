//! The Discord connector's mapping of an interaction (a JSON POST): a body
//! in, a ping, an autocomplete, an event, or a clean refusal out.
//!
//! Input: the body. Contract: no panic; a refusal says why; an event keeps
//! the interaction's id, application and token beside it (the token never
//! in the event's payload), has an instance key and survives both wire
//! encodings.

use connector_discord::interaction::{Kind, classify};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some(body) = fuzz::json(data) else {
            return;
        };
        match classify(&body) {
            Ok(Kind::Emit(mapped)) => {
                assert!(
                    !mapped.id.is_empty() && !mapped.token.is_empty(),
                    "id and token kept"
                );
                let payload = mapped
                    .event
                    .payload
                    .as_ref()
                    .expect("the payload is the body");
                assert!(
                    payload.0.get("token").is_none(),
                    "the token is not in the payload"
                );
                assert_eq!(
                    mapped.event.properties.get("interaction_id"),
                    Some(&mapped.id),
                    "the interaction id is a property"
                );
                assert!(
                    mapped.event.instance_key.is_some(),
                    "every event has an instance key"
                );
                fuzz::assert_event_travels(&mapped.event);
            }
            Ok(Kind::Ping | Kind::Autocomplete) => {}
            Err(e) => assert!(!e.is_empty(), "a refusal says why"),
        }
    });
}
