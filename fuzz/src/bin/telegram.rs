//! The Telegram connector's mapping of Bot API `Update` objects: an update
//! in, an event or a reason to skip it out.
//!
//! Input: a JSON body, either one update or a `getUpdates` reply
//! (`{"ok":true,"result":[…]}`), whose updates are each classified.
//! Contract: no panic; an emitted event comes from an update with an
//! `update_id`, carries the whole update as its payload, has an instance
//! key and survives both wire encodings; a skip says why.

use connector_telegram::{Outcome, classify};
use serde_json::Value;

fn check(update: &Value) {
    let c = classify(update);
    match &c.outcome {
        Outcome::Emit(event) => {
            assert!(c.update_id.is_some(), "an emitted update has an update_id");
            assert_eq!(
                event.payload.as_ref().map(|j| &j.0),
                Some(update),
                "the payload is the update"
            );
            assert!(
                event.instance_key.is_some(),
                "every event has an instance key"
            );
            assert!(!event.name.is_empty(), "every event has a name");
            fuzz::assert_event_travels(event);
        }
        Outcome::Skip(why) => assert!(!why.is_empty(), "a skip says why"),
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some(body) = fuzz::json(data) else {
            return;
        };
        match body.get("result").and_then(Value::as_array) {
            Some(updates) => updates.iter().for_each(check),
            None => check(&body),
        }
    });
}
