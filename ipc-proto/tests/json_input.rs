//! What the jsonl form takes from a connector written by hand: numbers and
//! booleans as property values, and clear errors (with the seq) for the rest.

use ipc_proto::{DecodeError, FromConnector, json};

fn emit_of(line: &str) -> ipc_proto::Emit {
    match json::decode::<FromConnector>(line) {
        Ok(FromConnector::Emit(e)) => e,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn numbers_and_booleans_are_taken_as_their_text() {
    let e = emit_of(
        r#"{"type":"emit","seq":3,"event":{"name":"n","properties":{"count":5,"ratio":1.5,"ok":true,"s":"x"}}}"#,
    );
    let p = &e.event.properties;
    assert_eq!(p["count"], "5");
    assert_eq!(p["ratio"], "1.5");
    assert_eq!(p["ok"], "true");
    assert_eq!(p["s"], "x");
}

#[test]
fn a_property_of_another_type_names_its_key_and_keeps_the_seq() {
    let err = json::decode::<FromConnector>(
        r#"{"type":"emit","seq":7,"event":{"name":"n","properties":{"tags":["a"]}}}"#,
    )
    .unwrap_err();
    assert_eq!(err.seq(), Some(7), "{err}");
    let text = err.to_string();
    assert!(text.contains("properties.tags"), "{text}");
    assert!(text.contains("seq 7"), "{text}");
}

#[test]
fn an_unknown_event_field_is_refused_by_name() {
    let err = json::decode::<FromConnector>(
        r#"{"type":"emit","seq":9,"event":{"name":"n","text":"hi"}}"#,
    )
    .unwrap_err();
    assert_eq!(err.seq(), Some(9));
    assert!(err.to_string().contains("unknown field `text`"), "{err}");
}

#[test]
fn a_line_without_a_readable_seq_has_none() {
    let err = json::decode::<FromConnector>(r#"{"type":"emit","seq":"x"}"#).unwrap_err();
    assert_eq!(err.seq(), None);
    let err = json::decode::<FromConnector>("not json").unwrap_err();
    assert!(matches!(err, DecodeError::Json { seq: None, .. }));
}

#[test]
fn type_need_not_come_first() {
    let first = r#"{"type":"emit","seq":3,"event":{"name":"m","properties":{"a":"1"}}}"#;
    let later = r#"{"seq":3,"event":{"name":"m","properties":{"a":"1"}},"type":"emit"}"#;
    assert_eq!(emit_of(first), emit_of(later));
    assert_eq!(emit_of(later).seq, 3);
}

#[test]
fn a_missing_or_unknown_type_is_refused_by_name() {
    for (line, want) in [
        (r#"{"seq":1}"#, "missing field `type`"),
        (r#"{}"#, "missing field `type`"),
        (r#"{"type":"shout","seq":1}"#, "unknown variant `shout`"),
        (r#"{"seq":1,"type":"shout"}"#, "unknown variant `shout`"),
        (r#"{"seq":1,"type":5}"#, "expected a string"),
        (r#"[1]"#, "a JSON object"),
    ] {
        let err = json::decode::<FromConnector>(line).expect_err(line);
        assert!(err.to_string().contains(want), "{line}: {err}");
    }
}
