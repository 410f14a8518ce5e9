//! `sandbox` (Connector, Agent): what is asked for. Whether this machine
//! can enforce it is the sandbox module's business, at start time.

use super::common::{percent, size};
use super::diag::Cx;
use super::model::{Network, NetworkMode, Resources, Sandbox, SandboxMode};
use super::read::Field;

/// Reads a `sandbox` mapping.
pub(crate) fn sandbox(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Sandbox> {
    let map = f.fields(cx, &["mode", "user", "network", "resources"])?;
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
    Some(Sandbox {
        mode,
        user,
        network,
        resources,
    })
}

fn network(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Network> {
    let map = f.fields(cx, &["mode", "bindTcp", "connectTcp"])?;
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
    Some(Network {
        mode: mode?,
        bind_tcp,
        connect_tcp,
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
