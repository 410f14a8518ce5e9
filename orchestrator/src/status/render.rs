//! The human-facing table of `orchestrator status`.

use std::fmt::Write as _;

use super::ProcessSnapshot;

/// The table `orchestrator status` prints.
pub fn render_table(rows: &[ProcessSnapshot]) -> String {
    let header = [
        "TARGET",
        "PID",
        "STATE",
        "RESTARTS",
        "UPTIME",
        "IN",
        "OUT",
        "LAST EXIT",
        "LAST ERROR",
    ];
    let mut table: Vec<[String; 9]> = vec![header.map(str::to_string)];
    for r in rows {
        let uptime = r
            .uptime_secs
            .map(|s| {
                humantime::format_duration(std::time::Duration::from_secs(s as u64)).to_string()
            })
            .unwrap_or_else(|| "-".into());
        let mut error = r.last_error.clone().unwrap_or_else(|| "-".into());
        if error.chars().count() > 60 {
            error = error.chars().take(59).collect::<String>() + "…";
        }
        table.push([
            r.target.clone(),
            r.pid.map_or("-".into(), |p| p.to_string()),
            serde_json::to_value(r.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            r.restarts.to_string(),
            uptime,
            r.events_in.to_string(),
            r.events_out.to_string(),
            r.last_exit.clone().unwrap_or_else(|| "-".into()),
            error,
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in table.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        // Below each process, one line per sandbox limit.
        for limit in i.checked_sub(1).map_or(&[][..], |r| &rows[r].sandbox[..]) {
            let _ = write!(
                out,
                "    sandbox {}={}: {}",
                limit.limit, limit.value, limit.mechanism
            );
            if let Some(note) = &limit.note {
                let _ = write!(out, "; {note}");
            }
            out.push('\n');
        }
    }
    out
}
