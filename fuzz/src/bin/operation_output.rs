//! Operation result normalization (`orchestrator::operations::normalize_output`):
//! a connector's result with the operation's `redact` pointers and
//! `maxOutputBytes` in, what the agent gets out.
//!
//! Input, separated by 0xFF: redact pointers (one a line), 4 bytes of
//! `maxOutputBytes`, the result as JSON. Contract: no panic; every listed
//! pointer was asked for and was present, and nothing it pointed at is
//! left; the output is the redacted result when its JSON fits, else a
//! prefix of that JSON, cut on a character boundary, of at most
//! `maxOutputBytes` bytes and at most 3 bytes short of it, marked truncated.

use orchestrator::operations::normalize_output;
use serde_json::Value;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let p = fuzz::parts(data, 3);
        let Some(pointers) = fuzz::text(p[0]) else {
            return;
        };
        let redact: Vec<String> = pointers.lines().map(str::to_owned).collect();
        let mut max = [0u8; 4];
        let n = p[1].len().min(4);
        max[..n].copy_from_slice(&p[1][..n]);
        let max = u64::from(u32::from_le_bytes(max) % (1 << 16));
        let Some(result) = fuzz::json(p[2]) else {
            return;
        };

        // What the redaction must give, done here the plain way.
        let mut expected = result.clone();
        let mut listed = Vec::new();
        for ptr in &redact {
            if let Some(v) = expected.pointer_mut(ptr) {
                *v = Value::String("<redacted>".into());
                listed.push(ptr.clone());
            }
        }
        let text = serde_json::to_string(&expected).expect("a value serializes");

        let (out, redactions, truncated) = normalize_output(result, &redact, max);
        assert_eq!(
            redactions, listed,
            "the pointers listed are the ones applied"
        );
        if !truncated {
            assert_eq!(out, expected, "a result that fits is the redacted result");
            assert!(text.len() as u64 <= max, "it fits");
            for ptr in &redactions {
                // Gone (a later pointer took its parent) or redacted.
                if let Some(v) = out.pointer(ptr) {
                    assert_eq!(v, &Value::String("<redacted>".into()), "{ptr} is redacted");
                }
            }
        } else {
            let Value::String(cut) = &out else {
                panic!("a truncated result is a string");
            };
            assert!(text.len() as u64 > max, "only an oversized result is cut");
            assert!(
                cut.len() as u64 <= max,
                "cut to maxOutputBytes: {} > {max}",
                cut.len()
            );
            assert!(
                cut.len() as u64 + 3 >= max,
                "cut no more than a character short"
            );
            assert!(
                text.starts_with(cut.as_str()),
                "the cut is a prefix of the redacted JSON"
            );
        }
    });
}
