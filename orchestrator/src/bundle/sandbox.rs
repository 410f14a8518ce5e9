//! `sandbox` (Connector, Agent): what is asked for. Whether this machine
//! can enforce it is the sandbox module's business, at start time.

use super::common::{percent, size};
use super::diag::Cx;
use super::model::{Filesystem, Network, NetworkMode, Resources, Sandbox, SandboxMode};
use super::read::Field;

/// Linux capabilities by number (`CAP_CHOWN` is 0), without the `CAP_` prefix.
pub const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The number of a capability named `CAP_X` or `X`.
pub fn capability_number(name: &str) -> Option<u32> {
    let bare = name.strip_prefix("CAP_").unwrap_or(name);
    CAPABILITIES
        .iter()
        .position(|c| *c == bare)
        .and_then(|n| u32::try_from(n).ok())
}

/// Reads a `sandbox` mapping.
pub(crate) fn sandbox(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Sandbox> {
    let map = f.fields(
        cx,
        &[
            "mode",
            "user",
            "network",
            "resources",
            "capabilities",
            "filesystem",
        ],
    )?;
    let modes = [
        ("enforce", SandboxMode::Enforce),
        ("bestEffort", SandboxMode::BestEffort),
        ("off", SandboxMode::Off),
    ];
    let mode = map
        .get("mode")
        .and_then(|m| m.one_of(cx, &modes))
        .unwrap_or(SandboxMode::Enforce);
    let user = map.get("user").and_then(|u| u.nonempty(cx));
    let network = map.get("network").and_then(|n| network(cx, &n));
    let resources = map
        .get("resources")
        .map(|r| resources(cx, &r))
        .unwrap_or_default();
    let capabilities = map
        .get("capabilities")
        .map(|c| capabilities(cx, &c))
        .unwrap_or_default();
    let filesystem = map
        .get("filesystem")
        .map(|f| filesystem(cx, &f))
        .unwrap_or_default();
    Some(Sandbox {
        mode,
        user,
        network,
        resources,
        capabilities,
        filesystem,
    })
}

/// `capabilities: [NET_BIND_SERVICE, CAP_KILL]`, as `CAP_…` names.
fn capabilities(cx: &mut Cx<'_>, f: &Field<'_>) -> Vec<String> {
    let items = f.seq(cx).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let Some(name) = item.nonempty(cx) else {
            continue;
        };
        match capability_number(&name) {
            Some(n) => {
                let full = format!("CAP_{}", CAPABILITIES[n as usize]);
                if !out.contains(&full) {
                    out.push(full);
                }
            }
            None => item.error(
                cx,
                format!("unknown capability `{name}` (e.g. CAP_NET_BIND_SERVICE)"),
            ),
        }
    }
    out
}

/// `filesystem: {readOnly: [/srv/data], readWrite: [/var/cache/x]}`.
fn filesystem(cx: &mut Cx<'_>, f: &Field<'_>) -> Filesystem {
    let Some(map) = f.fields(cx, &["readOnly", "readWrite"]) else {
        return Filesystem::default();
    };
    let paths = |cx: &mut Cx<'_>, key: &str| -> Vec<std::path::PathBuf> {
        let Some(list) = map.get(key) else {
            return Vec::new();
        };
        let items = list.seq(cx).unwrap_or_default();
        items
            .iter()
            .filter_map(|p| {
                let path = p.nonempty(cx)?;
                if !path.starts_with('/') {
                    p.error(cx, format!("`{path}` is not an absolute path"));
                    return None;
                }
                if path.split('/').any(|c| c == "..") {
                    p.error(cx, format!("`{path}` must not contain `..`"));
                    return None;
                }
                Some(std::path::PathBuf::from(path))
            })
            .collect()
    };
    Filesystem {
        read_only: paths(cx, "readOnly"),
        read_write: paths(cx, "readWrite"),
    }
}

fn network(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Network> {
    let map = f.fields(
        cx,
        &["mode", "bindTcp", "connectTcp", "bindUdp", "connectUdp"],
    )?;
    let modes = [
        ("none", NetworkMode::None),
        ("loopback", NetworkMode::Loopback),
        ("allowlist", NetworkMode::Allowlist),
        ("host", NetworkMode::Host),
    ];
    let mode = map.required(cx, "mode").and_then(|m| m.one_of(cx, &modes));
    let mut ports = |key: &str| -> Vec<u16> {
        let Some(list) = map.get(key) else {
            return Vec::new();
        };
        if mode.is_some_and(|m| m != NetworkMode::Allowlist) {
            list.error(cx, "ports are only allowed with network mode allowlist");
            return Vec::new();
        }
        let items = list.seq(cx).unwrap_or_default();
        items
            .iter()
            .filter_map(|p| p.int(cx, 1, 65_535))
            .filter_map(|p| u16::try_from(p).ok())
            .collect()
    };
    let bind_tcp = ports("bindTcp");
    let connect_tcp = ports("connectTcp");
    let bind_udp = ports("bindUdp");
    let connect_udp = ports("connectUdp");
    Some(Network {
        mode: mode?,
        bind_tcp,
        connect_tcp,
        bind_udp,
        connect_udp,
    })
}

fn resources(cx: &mut Cx<'_>, f: &Field<'_>) -> Resources {
    let Some(map) = f.fields(cx, &["memoryMax", "tasksMax", "cpuQuota", "nofile", "core"]) else {
        return Resources::default();
    };
    let count = |cx: &mut Cx<'_>, key: &str| {
        map.get(key)
            .and_then(|v| v.int(cx, 1, i64::MAX))
            .and_then(|n| u64::try_from(n).ok())
    };
    Resources {
        memory_max: map.get("memoryMax").and_then(|v| size(cx, &v)),
        tasks_max: count(cx, "tasksMax"),
        cpu_quota: map.get("cpuQuota").and_then(|v| percent(cx, &v)),
        nofile: count(cx, "nofile"),
        core: map.get("core").and_then(|v| size(cx, &v)),
    }
}
