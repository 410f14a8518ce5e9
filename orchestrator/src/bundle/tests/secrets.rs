//! `resolve_secrets`: every source, and errors that never carry a value.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::super::resolve_secrets;
use super::{BASE, doc, parse_text};

const SECRET_VALUE: &str = "s3cr3t-value";

fn bundle() -> super::super::Bundle {
    let text = [
        BASE.to_owned(),
        doc("Secret", "vault", "data:\n  FILE: {valueFrom: {file: keys/bot}}\n  ENV: {valueFrom: {env: VAULT_ENV}}"),
        doc(
            "Connection",
            "tg",
            "connectorRef: tg\nsecrets:\n  INLINE: {value: inline-value}\n  DIRECT: {valueFrom: {env: DIRECT_ENV}}\n  FROM_FILE: {valueFrom: {secretRef: {ref: Secret/vault, key: FILE}}}\n  FROM_ENV: {valueFrom: {secretRef: {ref: vault, key: ENV}}}",
        ),
    ]
    .join("---\n");
    parse_text(&text).unwrap_or_else(|d| panic!("{d:#?}"))
}

fn env_with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn every_source_resolves() {
    let b = bundle();
    let env = env_with(&[("DIRECT_ENV", "direct"), ("VAULT_ENV", "from-vault-env")]);
    let read = |path: &Path| -> io::Result<String> {
        assert_eq!(
            path,
            Path::new("/bundle/keys/bot"),
            "files are relative to the bundle root"
        );
        Ok("bot-token\n".to_owned())
    };
    let values = resolve_secrets(&b, &b.connections[0], &env, &read).expect("resolves");
    let want: BTreeMap<String, String> = [
        ("INLINE", "inline-value"),
        ("DIRECT", "direct"),
        ("FROM_FILE", "bot-token"),
        ("FROM_ENV", "from-vault-env"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(values, want);
}

#[test]
fn only_one_trailing_newline_is_trimmed() {
    let b = bundle();
    let env = env_with(&[("DIRECT_ENV", "d"), ("VAULT_ENV", "v")]);
    let read = |_: &Path| -> io::Result<String> { Ok("line one\nline two\r\n\n".to_owned()) };
    let values = resolve_secrets(&b, &b.connections[0], &env, &read).expect("resolves");
    assert_eq!(values["FROM_FILE"], "line one\nline two\r\n");
}

#[test]
fn errors_name_the_connection_key_and_source_but_no_value() {
    let b = bundle();
    // DIRECT_ENV is unset; the file read fails; VAULT_ENV holds a value that must not leak.
    let env = env_with(&[("VAULT_ENV", SECRET_VALUE), ("UNRELATED", SECRET_VALUE)]);
    let read =
        |_: &Path| -> io::Result<String> { Err(io::Error::from(io::ErrorKind::PermissionDenied)) };
    let err = resolve_secrets(&b, &b.connections[0], &env, &read).expect_err("two failures");
    assert!(
        !err.contains(SECRET_VALUE) && !err.contains("inline-value"),
        "{err}"
    );
    assert!(
        err.contains("Connection/tg: secret DIRECT: environment variable DIRECT_ENV is not set"),
        "{err}"
    );
    assert!(
        err.contains("Connection/tg: secret FROM_FILE: Secret/vault key FILE: cannot read /bundle/keys/bot: permission denied"),
        "{err}"
    );

    let env = env_with(&[("DIRECT_ENV", SECRET_VALUE)]);
    let read = |_: &Path| -> io::Result<String> { Ok(SECRET_VALUE.to_owned()) };
    let err = resolve_secrets(&b, &b.connections[0], &env, &read).expect_err("VAULT_ENV unset");
    assert_eq!(
        err,
        "Connection/tg: secret FROM_ENV: Secret/vault key ENV: environment variable VAULT_ENV is not set"
    );
}

/// Goondan's forms of `config`: a scalar, `{value}`, or `{valueFrom}` like a secret.
#[test]
fn config_values_take_goondan_forms() {
    let text = [
        BASE.to_owned(),
        doc("Secret", "vault", "data:\n  ENV: {valueFrom: {env: VAULT_ENV}}"),
        doc(
            "Connection",
            "tg",
            "connectorRef: tg\nconfig:\n  PLAIN: 30\n  INLINE: {value: inline}\n  DIRECT: {valueFrom: {env: DIRECT_ENV}}\n  FROM_SECRET: {valueFrom: {secretRef: {ref: Secret/vault, key: ENV}}}",
        ),
    ]
    .join("---\n");
    let b = parse_text(&text).unwrap_or_else(|d| panic!("{d:#?}"));
    let env = env_with(&[("DIRECT_ENV", "direct"), ("VAULT_ENV", "vaulted")]);
    let read = |_: &Path| -> io::Result<String> { unreachable!("no file sources") };
    let values =
        super::super::resolve_config(&b, &b.connections[0], &env, &read).expect("resolves");
    let want: BTreeMap<String, String> = [
        ("PLAIN", "30"),
        ("INLINE", "inline"),
        ("DIRECT", "direct"),
        ("FROM_SECRET", "vaulted"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(values, want);
    let err = super::super::resolve_config(&b, &b.connections[0], &env_with(&[]), &read)
        .expect_err("unset");
    assert!(
        err.contains("Connection/tg: config DIRECT: environment variable DIRECT_ENV is not set"),
        "{err}"
    );
}

#[test]
fn a_config_secret_ref_to_a_missing_key_is_a_validation_error() {
    let text = [
        BASE.to_owned(),
        doc(
            "Connection",
            "tg",
            "connectorRef: tg\nconfig:\n  X: {valueFrom: {secretRef: {ref: Secret/creds, key: NOPE}}}",
        ),
    ]
    .join("---\n");
    let errors = match parse_text(&text) {
        Ok(_) => panic!("must not parse"),
        Err(d) => d,
    };
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|e| e.contains("has no key `NOPE`")),
        "{text:#?}"
    );
}
