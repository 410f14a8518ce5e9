//! Is an emitted event one the Connector declares?

use ipc_proto::Event;

use crate::bundle::{Connector, PropertyType};

/// Checks `event` against `connector`'s declared events: the name is
/// declared, every required property is present, no undeclared property is
/// present, and each value parses as its declared type. The error says what
/// is wrong in terms a connector author can act on.
pub fn check_event(connector: &Connector, event: &Event) -> Result<(), String> {
    let Some(decl) = connector.event(&event.name) else {
        return Err(format!(
            "event '{}' is not declared by Connector/{}",
            event.name, connector.name
        ));
    };
    let mut problems = Vec::new();
    for (key, prop) in &decl.properties {
        match event.properties.get(key) {
            None if !prop.optional => {
                problems.push(format!("required property '{key}' is missing"))
            }
            None => {}
            Some(value) => {
                let ok = match prop.ty {
                    PropertyType::String => true,
                    PropertyType::Number => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
                    PropertyType::Boolean => value == "true" || value == "false",
                };
                if !ok {
                    problems.push(format!(
                        "property '{key}' is {value:?}, not a {}",
                        type_name(prop.ty)
                    ));
                }
            }
        }
    }
    for key in event.properties.keys() {
        if !decl.properties.contains_key(key) {
            problems.push(format!("property '{key}' is not declared"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "event '{}' of Connector/{}: {}",
            event.name,
            connector.name,
            problems.join("; ")
        ))
    }
}

fn type_name(ty: PropertyType) -> &'static str {
    match ty {
        PropertyType::String => "string",
        PropertyType::Number => "number",
        PropertyType::Boolean => "boolean",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::bundle::{EventDecl, Place, Program, PropertyDecl, Protocol, RestartPolicy};

    fn connector() -> Connector {
        let prop = |ty, optional| PropertyDecl { ty, optional };
        Connector {
            name: "telegram".into(),
            place: Place {
                file: "b.yaml".into(),
                line: 1,
                column: 1,
            },
            program: Program {
                entry: "x".into(),
                entry_place: Place {
                    file: "b.yaml".into(),
                    line: 5,
                    column: 10,
                },
                entry_sha256: None,
                args: vec![],
                env: BTreeMap::new(),
                protocol: Protocol::Frames,
                restart: RestartPolicy::default(),
                sandbox: None,
                health_interval: None,
                max_frame_bytes: 1 << 22,
                max_protocol_errors: 100,
            },
            events: vec![EventDecl {
                name: "user_message".into(),
                properties: BTreeMap::from([
                    ("chat_id".to_string(), prop(PropertyType::Number, false)),
                    ("is_bot".to_string(), prop(PropertyType::Boolean, true)),
                    ("lang".to_string(), prop(PropertyType::String, true)),
                ]),
            }],
            stdin: false,
            operations: Vec::new(),
            max_payload_bytes: 1024 * 1024,
            version: None,
            config_schema: None,
            secrets: None,
        }
    }

    fn event(name: &str, props: &[(&str, &str)]) -> Event {
        Event {
            name: name.into(),
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn table() {
        let c = connector();
        let cases: &[(&str, Event, Option<&str>)] = &[
            (
                "all good",
                event("user_message", &[("chat_id", "42"), ("is_bot", "false")]),
                None,
            ),
            (
                "optional absent",
                event("user_message", &[("chat_id", "-1.5")]),
                None,
            ),
            (
                "undeclared event",
                event("foo", &[]),
                Some("event 'foo' is not declared by Connector/telegram"),
            ),
            (
                "missing required",
                event("user_message", &[]),
                Some("required property 'chat_id' is missing"),
            ),
            (
                "undeclared property",
                event("user_message", &[("chat_id", "1"), ("x", "y")]),
                Some("property 'x' is not declared"),
            ),
            (
                "bad number",
                event("user_message", &[("chat_id", "forty")]),
                Some("property 'chat_id' is \"forty\", not a number"),
            ),
            (
                "nan is no number",
                event("user_message", &[("chat_id", "NaN")]),
                Some("not a number"),
            ),
            (
                "bad boolean",
                event("user_message", &[("chat_id", "1"), ("is_bot", "yes")]),
                Some("not a boolean"),
            ),
        ];
        for (name, ev, want) in cases {
            match (check_event(&c, ev), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }
}
