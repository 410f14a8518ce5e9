//! The webhook connector's configuration of its mapping and its extraction
//! (JSON pointers, headers, `PROPERTIES`): config and request in, an event
//! out, never a panic.
//!
//! Input, separated by 0xFF: config lines (`KEY=VALUE`; `SIGNATURE=none`
//! unless given), the request path, header lines (`name: value`), the body.
//! Contract: a configuration is accepted or refused with a message; a JSON
//! body becomes one event whose properties are only the configured ones,
//! whose instance key and text are set, whose payload is the body, and
//! that survives both wire encodings.

use std::collections::BTreeMap;

use connector_sdk::Secrets;
use connector_webhook::fuzzing::{Config, event};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let p = fuzz::parts(data, 4);
        let (Some(config), Some(path), Some(lines)) =
            (fuzz::text(p[0]), fuzz::text(p[1]), fuzz::text(p[2]))
        else {
            return;
        };
        let mut map: BTreeMap<String, String> = config
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        map.entry("SIGNATURE".into())
            .or_insert_with(|| "none".into());
        let secrets = Secrets(BTreeMap::from([(
            "WEBHOOK_SECRET".to_owned(),
            "fuzz-secret".to_owned(),
        )]));
        let config = match Config::parse(&map, &secrets) {
            Ok((config, _warnings)) => config,
            Err(e) => {
                assert!(!e.to_string().is_empty(), "a refusal says why");
                return;
            }
        };
        let Some(body) = fuzz::json(p[3]) else {
            return;
        };
        let headers = fuzz::header_map(&fuzz::headers(lines));
        let (ev, _dedupe) = event(&config.mapping, path, &headers, &body);
        let names: Vec<&str> = config
            .mapping
            .properties
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        for key in ev.properties.keys() {
            assert!(
                names.contains(&key.as_str()),
                "property {key} was not configured"
            );
        }
        assert!(ev.instance_key.is_some(), "every event has an instance key");
        assert!(ev.message.is_some(), "every event has a text");
        assert_eq!(
            ev.payload.as_ref().map(|j| &j.0),
            Some(&body),
            "the payload is the body"
        );
        fuzz::assert_event_travels(&ev);
    });
}
