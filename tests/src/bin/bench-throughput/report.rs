//! The machine a run was on, and small helpers for the table.

use std::path::Path;

pub fn machine() -> Vec<(String, String)> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.to_string())
        .unwrap_or_default();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "?".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let tmp = std::env::temp_dir();
    let fs = mount_of(&tmp).unwrap_or_else(|| "?".into());
    vec![
        ("nproc".into(), cpus),
        ("cpu".into(), model),
        ("kernel".into(), kernel),
        ("temp dir".into(), format!("{} ({fs})", tmp.display())),
        ("idle CPUs".into(), idle_state()),
    ]
}

/// How an idle CPU waits for work: what a wake-up of a process sleeping on
/// another CPU costs depends on it. In a VM with halt polling off
/// (`guest_halt_poll_ns` 0) an idle vCPU halts at once, and waking it goes
/// through the hypervisor: the cross-CPU round trips below are then ~40 µs.
fn idle_state() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let driver = read("/sys/devices/system/cpu/cpuidle/current_driver");
    let poll = read("/sys/module/haltpoll/parameters/guest_halt_poll_ns");
    match (driver, poll) {
        (Some(d), Some(ns)) if d == "haltpoll" && ns == "0" => {
            "cpuidle haltpoll, guest_halt_poll_ns 0 (no polling: an idle vCPU halts at once)".into()
        }
        (Some(d), Some(ns)) if d == "haltpoll" => {
            format!(
                "cpuidle haltpoll, guest_halt_poll_ns {ns} (an idle vCPU polls before it halts)"
            )
        }
        (Some(d), _) => format!("cpuidle {d}"),
        (None, _) => "?".into(),
    }
}

/// `<device> <fs type>` of the mount that holds `path`.
fn mount_of(path: &Path) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let path = path.canonicalize().ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} {}", f[0], f[2])))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, m)| m)
}

/// The 1-, 5- and 15-minute load averages.
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `p` quantile of sorted nanoseconds, in µs.
pub fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1e3
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
