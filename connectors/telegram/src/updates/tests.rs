//! Every update of `testdata/` (real Bot API payloads, see its README), and the edge cases.

use serde_json::{Value, json};

use super::*;

/// The 14 updates of testdata/, by file name.
pub(crate) const TESTDATA: &[(&str, &str)] = &[
    (
        "chat_boost_removed",
        include_str!("../../testdata/teloxide_update_chat_boost_removed.json"),
    ),
    (
        "chat_boost_updated",
        include_str!("../../testdata/teloxide_update_chat_boost_updated.json"),
    ),
    (
        "de_private_chat_text_message",
        include_str!("../../testdata/teloxide_update_de_private_chat_text_message.json"),
    ),
    (
        "dice_works",
        include_str!("../../testdata/teloxide_update_dice_works.json"),
    ),
    (
        "issue_1107",
        include_str!("../../testdata/teloxide_update_issue_1107.json"),
    ),
    (
        "issue_1107_2",
        include_str!("../../testdata/teloxide_update_issue_1107_2.json"),
    ),
    (
        "issue_523",
        include_str!("../../testdata/teloxide_update_issue_523.json"),
    ),
    (
        "message",
        include_str!("../../testdata/teloxide_update_message.json"),
    ),
    (
        "message_reaction_count_updated",
        include_str!("../../testdata/teloxide_update_message_reaction_count_updated.json"),
    ),
    (
        "message_reaction_updated",
        include_str!("../../testdata/teloxide_update_message_reaction_updated.json"),
    ),
    (
        "message_reaction_updated_2",
        include_str!("../../testdata/teloxide_update_message_reaction_updated_2.json"),
    ),
    (
        "new_update_kind_error",
        include_str!("../../testdata/teloxide_update_new_update_kind_error.json"),
    ),
    (
        "paid_media_purchased_de",
        include_str!("../../testdata/teloxide_update_paid_media_purchased_de.json"),
    ),
    (
        "pinned_message_works",
        include_str!("../../testdata/teloxide_update_pinned_message_works.json"),
    ),
];

fn load(name: &str) -> Value {
    let (_, text) = TESTDATA
        .iter()
        .find(|(n, _)| *n == name)
        .expect("known file");
    serde_json::from_str(text).expect("valid JSON")
}

fn emitted(c: &Classified) -> &Event {
    match &c.outcome {
        Outcome::Emit(e) => e,
        Outcome::Skip(why) => panic!("skipped: {why}"),
    }
}

fn props(e: &Event) -> Vec<(&str, &str)> {
    e.properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn text_messages_become_message_events() {
    let c = classify(&load("message"));
    assert_eq!(c.update_id, Some(892252934));
    let e = emitted(&c);
    assert_eq!(e.name, "message");
    assert_eq!(e.message, Some(Message::text("hello there")));
    assert_eq!(e.instance_key.as_deref(), Some("telegram:218485655"));
    assert_eq!(
        props(e),
        [
            ("chat_id", "218485655"),
            ("chat_type", "private"),
            ("message_id", "6557"),
            ("user_id", "218485655"),
            ("username", "WaffleLapkin"),
        ]
    );

    let e = classify(&load("de_private_chat_text_message"));
    assert_eq!(emitted(&e).message, Some(Message::text("4")));
    assert_eq!(emitted(&e).name, "message");
}

#[test]
fn a_slash_message_is_a_command() {
    let c = classify(&load("issue_1107_2"));
    assert_eq!(c.update_id, Some(439432600));
    let e = emitted(&c);
    assert_eq!(e.name, "command");
    assert_eq!(e.instance_key.as_deref(), Some("telegram:-1001293752024"));
    assert_eq!(e.properties["command"], "/report");
    assert_eq!(e.properties["args"], "");
    assert_eq!(e.properties["chat_type"], "supergroup");
    assert_eq!(e.properties["user_id"], "5964236329");
    assert_eq!(e.message, Some(Message::text("/report")));
}

#[test]
fn commands_lose_the_bot_name_and_keep_their_arguments() {
    assert_eq!(
        command("/start@MyBot  deep link "),
        Some(("/start", "deep link"))
    );
    assert_eq!(command("/help"), Some(("/help", "")));
    assert_eq!(command("/echo\nline two"), Some(("/echo", "line two")));
    assert_eq!(command("hello /start"), None);
}

#[test]
fn messages_without_text_and_other_kinds_are_skipped_with_a_reason() {
    let cases = [
        ("dice_works", Some(573255266), "has no text (dice)"),
        ("issue_1107", Some(439432599), "has no text (story)"),
        (
            "pinned_message_works",
            Some(845402291),
            "has no text (pinned_message)",
        ),
        (
            "chat_boost_removed",
            Some(71651297),
            "removed_chat_boost updates",
        ),
        ("chat_boost_updated", Some(71651297), "chat_boost updates"),
        (
            "message_reaction_count_updated",
            Some(71651251),
            "message_reaction_count updates",
        ),
        (
            "message_reaction_updated",
            Some(71651249),
            "message_reaction updates",
        ),
        (
            "message_reaction_updated_2",
            Some(767844136),
            "message_reaction updates",
        ),
        ("new_update_kind_error", Some(1), "new_update_kind updates"),
        (
            "paid_media_purchased_de",
            Some(573255267),
            "purchased_paid_media updates",
        ),
    ];
    for (file, id, why) in cases {
        let c = classify(&load(file));
        assert_eq!(c.update_id, id, "{file}");
        match &c.outcome {
            Outcome::Skip(reason) => assert!(reason.contains(why), "{file}: {reason}"),
            Outcome::Emit(e) => panic!("{file}: emitted {e:?}"),
        }
    }
}

#[test]
fn every_testdata_update_is_classified() {
    assert_eq!(TESTDATA.len(), 14);
    let emitted = TESTDATA
        .iter()
        .filter(|(name, _)| matches!(classify(&load(name)).outcome, Outcome::Emit(_)))
        .count();
    assert_eq!(emitted, 4);
}

#[test]
fn edited_messages_and_captions() {
    let c = classify(&json!({
        "update_id": 5,
        "edited_message": {
            "message_id": 9, "date": 1, "edit_date": 2,
            "chat": {"id": 42, "type": "private"},
            "from": {"id": 7, "is_bot": false, "first_name": "A"},
            "text": "/start fixed"
        }
    }));
    let e = emitted(&c);
    assert_eq!(e.name, "edited_message", "an edit is never a command");
    assert_eq!(
        props(e),
        [
            ("chat_id", "42"),
            ("chat_type", "private"),
            ("message_id", "9"),
            ("user_id", "7")
        ]
    );
    let c = classify(&json!({
        "update_id": 6,
        "message": {
            "message_id": 10, "date": 1, "chat": {"id": 42, "type": "group"},
            "photo": [{"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1}],
            "caption": "look"
        }
    }));
    let e = emitted(&c);
    assert_eq!(
        e.message,
        Some(Message::Image(Image {
            url: "telegram-file:x".into()
        }))
    );
    assert_eq!(e.properties["caption"], "look");
    assert!(!e.properties.contains_key("user_id"));
}

#[test]
fn callback_queries() {
    let c = classify(&json!({
        "update_id": 7,
        "callback_query": {
            "id": "4382bfdwdsb323b2d9",
            "from": {"id": 7, "is_bot": false, "first_name": "A", "username": "ann"},
            "message": {"message_id": 3, "date": 1, "chat": {"id": -100, "type": "group"}},
            "chat_instance": "1",
            "data": "vote:yes"
        }
    }));
    let e = emitted(&c);
    assert_eq!(e.name, "callback_query");
    assert_eq!(e.instance_key.as_deref(), Some("telegram:-100"));
    assert_eq!(
        props(e),
        [
            ("callback_query_id", "4382bfdwdsb323b2d9"),
            ("chat_id", "-100"),
            ("data", "vote:yes"),
            ("user_id", "7"),
            ("username", "ann"),
        ]
    );
    let inline = classify(&json!({
        "update_id": 8,
        "callback_query": {"id": "1", "from": {"id": 7}, "inline_message_id": "z", "chat_instance": "1", "data": "d"}
    }));
    assert_eq!(
        emitted(&inline).instance_key.as_deref(),
        Some("telegram:user:7")
    );
    assert!(!emitted(&inline).properties.contains_key("chat_id"));
    let game = classify(&json!({
        "update_id": 9,
        "callback_query": {"id": "1", "from": {"id": 7}, "chat_instance": "1", "game_short_name": "g"}
    }));
    assert!(matches!(game.outcome, Outcome::Skip(ref r) if r.contains("without data")));
}

#[test]
fn malformed_updates_are_skipped_not_fatal() {
    for v in [
        json!(null),
        json!(42),
        json!([]),
        json!({}),
        json!({"update_id": 1}),
        json!({"update_id": "x", "message": "not an object"}),
        json!({"update_id": 2, "message": {"text": "no chat"}}),
        json!({"update_id": 3, "callback_query": {"data": "no from"}}),
    ] {
        assert!(matches!(classify(&v).outcome, Outcome::Skip(_)), "{v}");
    }
}

#[test]
fn attachments_become_file_references_without_the_token() {
    let msg = |content: Value| {
        let mut m = json!({"message_id": 3, "date": 1, "chat": {"id": 42, "type": "private"},
                           "from": {"id": 7, "is_bot": false, "first_name": "A"}});
        for (k, v) in content.as_object().unwrap() {
            m[k] = v.clone();
        }
        classify(&json!({"update_id": 9, "message": m}))
    };
    // The largest photo size, by area, whatever the order.
    let c = msg(json!({"photo": [
        {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 1000},
        {"file_id": "big", "file_unique_id": "b", "width": 1280, "height": 960, "file_size": 90000},
        {"file_id": "mid", "file_unique_id": "m", "width": 320, "height": 240, "file_size": 9000}
    ]}));
    let e = emitted(&c);
    assert_eq!(e.name, "message");
    assert_eq!(
        e.message,
        Some(Message::Image(Image {
            url: "telegram-file:big".into()
        }))
    );
    assert_eq!(e.properties["attachment"], "photo");
    assert_eq!(e.properties["file_id"], "big");
    let cases = [
        (
            json!({"document": {"file_id": "D1", "file_unique_id": "d", "file_name": "report.pdf",
                                "mime_type": "application/pdf", "file_size": 5}}),
            "document",
            "telegram-file:D1",
            "report.pdf",
        ),
        (
            json!({"voice": {"file_id": "V1", "file_unique_id": "v", "duration": 2,
                             "mime_type": "audio/ogg"}}),
            "voice",
            "telegram-file:V1",
            "voice.ogg",
        ),
        (
            json!({"video": {"file_id": "M1", "file_unique_id": "m", "width": 1, "height": 1,
                             "duration": 1}}),
            "video",
            "telegram-file:M1",
            "video.mp4",
        ),
        (
            json!({"audio": {"file_id": "A1", "file_unique_id": "a", "duration": 1,
                             "title": "Song"}, "caption": "/play"}),
            "audio",
            "telegram-file:A1",
            "Song",
        ),
    ];
    for (content, kind, url, name) in cases {
        let c = msg(content);
        let e = emitted(&c);
        assert_eq!(e.name, "message", "{kind}: a caption is never a command");
        assert_eq!(
            e.message,
            Some(Message::File(File {
                url: url.into(),
                name: name.into()
            })),
            "{kind}"
        );
        assert_eq!(e.properties["attachment"], kind);
    }
}

#[test]
fn channel_posts_and_their_edits() {
    let post = json!({"message_id": 4, "date": 1, "text": "/news today",
                      "chat": {"id": -1001, "type": "channel", "title": "News"},
                      "sender_chat": {"id": -1001, "type": "channel"}});
    let c = classify(&json!({"update_id": 11, "channel_post": post}));
    let e = emitted(&c);
    assert_eq!(
        e.name, "channel_post",
        "commands are for messages to the bot"
    );
    assert_eq!(e.instance_key.as_deref(), Some("telegram:-1001"));
    assert_eq!(e.properties["chat_type"], "channel");
    let c = classify(&json!({"update_id": 12, "edited_channel_post": post}));
    assert_eq!(emitted(&c).name, "edited_channel_post");
}

#[test]
fn my_chat_member_says_what_changed() {
    let c = classify(&load("issue_523"));
    let e = emitted(&c);
    assert_eq!(e.name, "my_chat_member");
    assert_eq!(e.properties["old_status"], "member");
    assert_eq!(e.properties["new_status"], "kicked");
    assert_eq!(e.properties["chat_id"], "0");
    assert_eq!(e.properties["user_id"], "0");
    assert_eq!(e.instance_key.as_deref(), Some("telegram:0"));
}
