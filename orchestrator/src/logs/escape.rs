//! Control characters never reach a log file raw: a child's `\n` could
//! otherwise start a forged line (`… orchestrator exited`), and `ESC` could
//! drive the terminal of whoever reads the log.

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` is written escaped: every C0 control except tab, DEL, every C1
/// control, and the Unicode line and paragraph separators.
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t') || c == '\u{2028}' || c == '\u{2029}'
}

/// `text` with control characters made visible: `\n`, `\r`, `\e` (ESC) and
/// `\u{XX}` for the others. Text without any comes back borrowed.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_become_visible() {
        let cases = [
            ("plain text", "plain text"),
            ("tab\tkept", "tab\tkept"),
            (
                "x\n2026-01-01T00:00:00.000Z orchestrator exited",
                "x\\n2026-01-01T00:00:00.000Z orchestrator exited",
            ),
            ("a\rb", "a\\rb"),
            ("\u{1b}[31mred", "\\e[31mred"),
            ("nul\0bel\u{7}del\u{7f}", "nul\\u{0}bel\\u{7}del\\u{7f}"),
            ("c1\u{9b}csi", "c1\\u{9b}csi"),
            ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}"),
            ("ünïcode ✓", "ünïcode ✓"),
        ];
        for (text, want) in cases {
            assert_eq!(escape_controls(text), want, "{text:?}");
        }
    }

    #[test]
    fn nothing_escaped_can_break_a_line() {
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let out = escape_controls(&format!("a{c}b")).into_owned();
            assert!(
                !out.contains(['\n', '\r', '\u{1b}', '\u{85}', '\u{2028}', '\u{2029}']),
                "{c:?} -> {out:?}"
            );
            assert!(!out.chars().any(|c| c.is_control() && c != '\t'), "{out:?}");
        }
    }
}
