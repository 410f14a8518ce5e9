//! The bundle loader's text entry point, `orchestrator::bundle::parse`: YAML
//! text in, a validated bundle or diagnostics out, never a panic.
//!
//! Input: one or more bundle files separated by 0xFF. Contract: an `Err`
//! holds at least one diagnostic, each with a message and, when placed, a
//! place inside the file it names; parsing the same texts twice gives the
//! same answer; every operation schema of a valid bundle compiles (the
//! operations code relies on it).

use std::path::Path;

use orchestrator::bundle::{self, Source};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let mut sources = Vec::new();
        for (i, part) in data.split(|b| *b == fuzz::SEP).enumerate().take(4) {
            let Some(text) = fuzz::text(part) else {
                return;
            };
            sources.push(Source {
                name: format!("bundle-{i}.yaml"),
                text: text.to_owned(),
            });
        }
        let root = Path::new("/fuzz-bundle");
        match bundle::parse(root, &sources) {
            Err(diagnostics) => {
                assert!(!diagnostics.is_empty(), "an error says what is wrong");
                for d in &diagnostics {
                    assert!(!d.message.is_empty(), "a diagnostic has a message");
                    if let Some(place) = &d.place {
                        let source = sources
                            .iter()
                            .find(|s| *s.name == *place.file)
                            .expect("a place names one of the files");
                        // YAML breaks lines at `\r\n`, `\r` and `\n`.
                        let lines = source
                            .text
                            .replace("\r\n", "\n")
                            .split(['\n', '\r'])
                            .count();
                        assert!(
                            place.line >= 1 && place.line <= lines + 1,
                            "line {} of {lines}: {d}",
                            place.line
                        );
                    }
                }
                let again = bundle::parse(root, &sources).expect_err("parse is deterministic");
                assert_eq!(again, diagnostics, "parse is deterministic");
            }
            Ok(b) => {
                for c in &b.connections {
                    let connector = b
                        .connectors
                        .get(&c.connector)
                        .expect("a valid Connection names a Connector of the bundle");
                    for op in &connector.operations {
                        for schema in [&op.input, &op.output].into_iter().flatten() {
                            assert!(
                                jsonschema::validator_for(schema).is_ok(),
                                "a valid bundle's schema of {} compiles",
                                op.name
                            );
                        }
                    }
                    // What the orchestrator builds for the Connection at apply time.
                    let _ = orchestrator::operations::ConnectionOps::new(c, connector);
                }
            }
        }
    });
}
