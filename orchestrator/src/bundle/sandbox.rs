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
        &[
            "mode",
            "bindTcp",
            "connectTcp",
            "bindUdp",
            "connectUdp",
            "allowHosts",
            "allowPorts",
            "allowCidrs",
            "publishTcp",
        ],
    )?;
    let modes = [
        ("none", NetworkMode::None),
        ("loopback", NetworkMode::Loopback),
        ("allowlist", NetworkMode::Allowlist),
        ("egress", NetworkMode::Egress),
        ("host", NetworkMode::Host),
    ];
    let mode = map.required(cx, "mode").and_then(|m| m.one_of(cx, &modes));
    let only = |cx: &mut Cx<'_>, key: &str, wanted: NetworkMode| -> Option<Vec<Field<'_>>> {
        let list = map.get(key)?;
        if mode.is_some_and(|m| m != wanted) {
            let message = match wanted {
                NetworkMode::Egress => format!("{key} is only allowed with network mode egress"),
                _ => "ports are only allowed with network mode allowlist".to_string(),
            };
            list.error(cx, message);
            return None;
        }
        list.seq(cx)
    };
    let port_list = |cx: &mut Cx<'_>, items: Vec<Field<'_>>| -> Vec<u16> {
        items
            .iter()
            .filter_map(|p| p.int(cx, 1, 65_535))
            .filter_map(|p| u16::try_from(p).ok())
            .collect()
    };
    let ports = |cx: &mut Cx<'_>, key: &str| -> Vec<u16> {
        let items = only(cx, key, NetworkMode::Allowlist).unwrap_or_default();
        port_list(cx, items)
    };
    let bind_tcp = ports(cx, "bindTcp");
    let connect_tcp = ports(cx, "connectTcp");
    let bind_udp = ports(cx, "bindUdp");
    let connect_udp = ports(cx, "connectUdp");
    let allow_hosts = only(cx, "allowHosts", NetworkMode::Egress)
        .unwrap_or_default()
        .iter()
        .filter_map(|h| {
            let host = h.nonempty(cx)?;
            match host_pattern(&host) {
                Ok(pattern) => Some(pattern),
                Err(why) => {
                    h.error(cx, why);
                    None
                }
            }
        })
        .collect();
    let allow_ports = match only(cx, "allowPorts", NetworkMode::Egress) {
        Some(items) => port_list(cx, items),
        None if mode == Some(NetworkMode::Egress) => vec![443],
        None => Vec::new(),
    };
    let allow_cidrs = only(cx, "allowCidrs", NetworkMode::Egress)
        .unwrap_or_default()
        .iter()
        .filter_map(|c| {
            let text = c.nonempty(cx)?;
            text.parse::<crate::egress::Cidr>()
                .map_err(|why| c.error(cx, why))
                .ok()
        })
        .collect();
    let publish_tcp = only(cx, "publishTcp", NetworkMode::Egress)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            let text = p.scalar(cx)?;
            let addr = match text.parse::<u16>() {
                Ok(port) if port > 0 => Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
                _ => text.parse::<std::net::SocketAddr>().map_err(|_| ()),
            };
            match addr {
                Ok(a) if a.port() > 0 => Some(a),
                _ => {
                    p.error(
                        cx,
                        format!("`{text}` is not a port or address:port (e.g. 3000, 0.0.0.0:3000)"),
                    );
                    None
                }
            }
        })
        .collect();
    if mode == Some(NetworkMode::Egress) && map.get("allowHosts").is_none() {
        f.error(
            cx,
            "network mode egress needs allowHosts (e.g. [api.telegram.org, \"*.slack.com\"])",
        );
    }
    Some(Network {
        mode: mode?,
        bind_tcp,
        connect_tcp,
        bind_udp,
        connect_udp,
        allow_hosts,
        allow_ports,
        allow_cidrs,
        publish_tcp,
    })
}

/// An `allowHosts` entry, lowercased: a host name, `*.` and a host name, or
/// a literal IP address.
fn host_pattern(entry: &str) -> Result<String, String> {
    let lower = crate::egress::normalize_host(entry);
    if lower.parse::<std::net::IpAddr>().is_ok() {
        return Ok(lower);
    }
    let name = lower.strip_prefix("*.").unwrap_or(&lower);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{entry}` is not a host name, `*.` and a host name, or an IP address (a `*` only as a leading `*.`)"
        ));
    }
    Ok(lower)
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
