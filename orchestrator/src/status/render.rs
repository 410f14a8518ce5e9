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
    // Cluster mode: which node each process runs on, first.
    let with_node = rows.iter().any(|r| r.node.is_some());
    let mut table: Vec<Vec<String>> = vec![header.map(str::to_string).to_vec()];
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
        let mut row = vec![
            r.target.clone(),
            r.pid.map_or("-".into(), |p| p.to_string()),
            {
                let state = serde_json::to_value(r.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                match (r.operations_state.as_deref(), r.connection_state.as_deref()) {
                    (_, Some("credential_expired")) => format!("{state}, credential_expired"),
                    (_, Some("disabled")) => "disabled".to_string(),
                    (Some("degraded"), _) => format!("{state}, degraded"),
                    _ => state,
                }
            },
            r.restarts.to_string(),
            uptime,
            r.events_in.to_string(),
            r.events_out.to_string(),
            r.last_exit.clone().unwrap_or_else(|| "-".into()),
            error,
        ];
        if with_node {
            row.insert(0, r.node.clone().unwrap_or_else(|| "-".into()));
        }
        table.push(row);
    }
    if with_node {
        table[0].insert(0, "NODE".into());
    }
    let widths: Vec<usize> = (0..table[0].len())
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

/// Lines for the Agents that have no instance now, after the table:
/// `agent/echo (no instances)`.
pub fn render_idle_agents(agents: &[super::AgentSummary]) -> String {
    agents
        .iter()
        .filter(|a| a.instances == 0)
        .map(|a| match a.disabled {
            true => format!("agent/{} (disabled)\n", a.name),
            false => format!("agent/{} (no instances)\n", a.name),
        })
        .collect()
}

/// `orchestrator status TARGET` for one process, like `systemctl status`:
/// every field, each sandbox limit, and its last crash record (`crash`, the
/// lines of it in its log; empty when it never crashed).
pub fn render_detail(r: &ProcessSnapshot, crash: &[String]) -> String {
    let mut out = String::new();
    let state = serde_json::to_value(r.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "{}", r.target);
    let running = match (r.pid, r.pgid) {
        (Some(pid), Some(pgid)) => format!(" (pid {pid}, process group {pgid})"),
        (Some(pid), None) => format!(" (pid {pid})"),
        _ => String::new(),
    };
    let _ = writeln!(out, "  state       {state}{running}");
    let uptime = r.uptime_secs.map_or_else(
        || "-".into(),
        |s| humantime::format_duration(std::time::Duration::from_secs(s as u64)).to_string(),
    );
    let _ = writeln!(out, "  uptime      {uptime}");
    let _ = writeln!(out, "  restarts    {}", r.restarts);
    let _ = writeln!(out, "  last exit   {}", dash(&r.last_exit));
    let _ = writeln!(out, "  last error  {}", dash(&r.last_error));
    let _ = writeln!(
        out,
        "  events      in {}, out {}, protocol errors {}",
        r.events_in, r.events_out, r.protocol_errors
    );
    if let Some(i) = &r.intake {
        let _ = writeln!(
            out,
            "  intake      accepted {}, nacked {}, unmatched {}, dropped {}, quota exceeded {}, overloaded {}, duplicates {}",
            i.accepted,
            i.nacked,
            i.unmatched,
            i.dropped,
            i.quota_exceeded,
            i.overloaded,
            i.duplicates
        );
    }
    if let Some(state) = &r.connection_state {
        let _ = writeln!(out, "  connection  {state}");
    }
    if let Some(d) = &r.details {
        let _ = writeln!(
            out,
            "  connector   version {}, config schema {}",
            d.connector_version.as_deref().unwrap_or("-"),
            d.config_schema_version.as_deref().unwrap_or("-")
        );
        let _ = writeln!(
            out,
            "  limits      events in {}, calls out {}",
            d.rate_limit.as_deref().unwrap_or("no rate limit"),
            d.operations_rate_limit
                .as_deref()
                .unwrap_or("no rate limit")
        );
    }
    let _ = writeln!(out, "  last ok     {}", dash(&r.last_success_at));
    let _ = writeln!(out, "  health      {}", dash(&r.health_checked_at));
    if let Some(ops) = &r.operations {
        let state = r.operations_state.as_deref().unwrap_or("active");
        let trips = r.circuit_trips.unwrap_or(0);
        let _ = writeln!(out, "  operations  {state} (circuit tripped {trips} times)");
        for (name, o) in ops {
            let failed: u64 = o.failed.values().sum();
            let p50 = o.p50_ms.map_or("-".into(), |ms| format!("{ms:.1} ms"));
            let p99 = o.p99_ms.map_or("-".into(), |ms| format!("{ms:.1} ms"));
            let _ = writeln!(
                out,
                "    {name}: {} invocations, {} ok, {failed} failed, {} retries, {} in flight, p50 {p50}, p99 {p99}",
                o.invocations, o.ok, o.retries, o.in_flight
            );
        }
    }
    if !r.sandbox.is_empty() {
        let _ = writeln!(out, "  sandbox");
        for limit in &r.sandbox {
            let _ = write!(
                out,
                "    {}={}: {}",
                limit.limit, limit.value, limit.mechanism
            );
            if let Some(note) = &limit.note {
                let _ = write!(out, "; {note}");
            }
            out.push('\n');
        }
    }
    if let Some(e) = &r.egress {
        let by_reason = |m: &std::collections::BTreeMap<String, u64>| {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
            if parts.is_empty() {
                "0".to_string()
            } else {
                parts.join(", ")
            }
        };
        let _ = writeln!(
            out,
            "  egress      allowed {}, refused {}, failed {}, bytes sent {}, received {}",
            e.allowed,
            by_reason(&e.refused),
            by_reason(&e.failed),
            e.bytes_sent,
            e.bytes_received
        );
    }
    if !crash.is_empty() {
        let _ = writeln!(out, "  last crash record");
        for line in crash {
            let _ = writeln!(out, "    {line}");
        }
    }
    out
}

/// The last crash record in `lines` of a process log: from its
/// `crash record:` line to its `end of crash record`.
pub fn last_crash_record(lines: &[String]) -> Vec<String> {
    let Some(start) = lines
        .iter()
        .rposition(|l| l.contains(" orchestrator crash record: "))
    else {
        return Vec::new();
    };
    let rest = &lines[start..];
    let end = rest
        .iter()
        .position(|l| l.contains(" orchestrator end of crash record"))
        .map_or(rest.len(), |e| e + 1);
    rest[..end].to_vec()
}
