//! From a `sandbox` section and the machine's capabilities to a plan: pure.

use super::probe::{Capabilities, CgroupHome, CgroupVersion, Controller};
use super::{
    CgroupLimit, ChildSteps, Families, LandlockNet, LimitReport, PlanMode, Rlimit, RlimitKind,
    SandboxPlan, UserIds,
};
use crate::bundle::{Network, NetworkMode, Sandbox, SandboxMode};

/// The first Landlock ABI with TCP port rules.
const LANDLOCK_TCP_ABI: i32 = 4;
/// The first Landlock ABI with UDP rules.
const LANDLOCK_UDP_ABI: i32 = 10;
/// The cpu controller's period, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

/// The plan for `sandbox` on a machine with `caps`; `resolve_user` turns a
/// user name into its ids.
pub fn plan(
    sandbox: &Sandbox,
    caps: &Capabilities,
    resolve_user: &dyn Fn(&str) -> Result<UserIds, String>,
) -> SandboxPlan {
    let mode = match sandbox.mode {
        SandboxMode::Enforce => PlanMode::Enforce,
        SandboxMode::BestEffort => PlanMode::BestEffort,
        SandboxMode::Off => PlanMode::Off,
    };
    let mut b = Builder {
        report: Vec::new(),
        cgroups: Vec::new(),
        steps: ChildSteps {
            strict: mode == PlanMode::Enforce,
            ..ChildSteps::default()
        },
        dynamic_user: false,
        egress: None,
    };
    if let Some(name) = &sandbox.user {
        if !caps.root {
            b.gap("user", name, "the orchestrator is not root".into());
        } else if name == "dynamic" {
            b.dynamic_user = true;
            let note = "a uid and gid of its own from --uid-range for each child, while it runs; its state directory is chowned to it (0700), the bundle directory must be readable by it";
            b.ok("user", name, "setuid".into(), Some(note.into()));
        } else {
            match resolve_user(name) {
                Ok(ids) => {
                    b.steps.user = Some(ids);
                    let note = format!(
                        "uid {} gid {}; its state directory is chowned to it, the bundle directory must be readable by it",
                        ids.uid, ids.gid
                    );
                    b.ok("user", name, "setuid".into(), Some(note));
                }
                Err(why) => b.gap("user", name, why),
            }
        }
    }
    if let Some(net) = &sandbox.network {
        network(&mut b, net, caps);
    }
    let r = &sandbox.resources;
    if let Some(bytes) = r.memory_max {
        let value = size(bytes);
        match caps.cgroup(Controller::Memory) {
            Ok(home) => {
                let files = match home.version {
                    CgroupVersion::V1 => vec![
                        ("memory.limit_in_bytes", bytes.to_string()),
                        // No swapping past the limit, where swap is accounted.
                        ("?memory.memsw.limit_in_bytes", bytes.to_string()),
                    ],
                    CgroupVersion::V2 => vec![
                        ("memory.max", bytes.to_string()),
                        ("?memory.swap.max", "0".to_string()),
                    ],
                };
                b.cgroup("memoryMax", &value, Controller::Memory, home, files);
            }
            Err(why) => {
                b.rlimit(RlimitKind::As, bytes);
                let note = format!(
                    "RLIMIT_AS limits address space, not resident memory (no memory cgroup: {why})"
                );
                b.ok("memoryMax", &value, "rlimit".into(), Some(note));
            }
        }
    }
    if let Some(n) = r.tasks_max {
        let dedicated = b.steps.user.map(|ids| ids.uid.to_string());
        let dedicated = dedicated.or_else(|| b.dynamic_user.then(|| "its own uid".to_string()));
        match (caps.cgroup(Controller::Pids), dedicated) {
            (Ok(home), _) => {
                let files = vec![("pids.max", n.to_string())];
                b.cgroup("tasksMax", &n.to_string(), Controller::Pids, home, files);
            }
            (Err(why), Some(uid)) => {
                b.rlimit(RlimitKind::Nproc, n);
                let note = format!(
                    "RLIMIT_NPROC counts every process of uid {uid} (no pids cgroup: {why})"
                );
                b.ok("tasksMax", &n.to_string(), "rlimit".into(), Some(note));
            }
            (Err(why), None) => b.gap(
                "tasksMax",
                &n.to_string(),
                format!(
                    "no pids cgroup ({why}), and RLIMIT_NPROC needs a dedicated uid (sandbox.user)"
                ),
            ),
        }
    }
    if let Some(pct) = r.cpu_quota {
        let value = format!("{pct}%");
        let quota = u64::from(pct) * CPU_PERIOD_US / 100;
        match caps.cgroup(Controller::Cpu) {
            Ok(home) => {
                let files = match home.version {
                    CgroupVersion::V1 => vec![
                        ("cpu.cfs_period_us", CPU_PERIOD_US.to_string()),
                        ("cpu.cfs_quota_us", quota.to_string()),
                    ],
                    CgroupVersion::V2 => vec![("cpu.max", format!("{quota} {CPU_PERIOD_US}"))],
                };
                b.cgroup("cpuQuota", &value, Controller::Cpu, home, files);
            }
            Err(why) => b.gap(
                "cpuQuota",
                &value,
                format!("no cpu cgroup ({why}), and no rlimit can do it"),
            ),
        }
    }
    if let Some(n) = r.nofile {
        b.rlimit(RlimitKind::Nofile, n);
        b.ok("nofile", &n.to_string(), "rlimit".into(), None);
    }
    if let Some(bytes) = r.core {
        b.rlimit(RlimitKind::Core, bytes);
        b.ok("core", &size(bytes), "rlimit".into(), None);
    }

    if mode == PlanMode::Off {
        for r in &mut b.report {
            r.enforced = false;
            r.mechanism = "not enforced: sandbox mode is off".into();
            r.note = None;
        }
        b.steps = ChildSteps::default();
        b.cgroups.clear();
        b.dynamic_user = false;
        b.egress = None;
    } else {
        super::harden::harden(&mut b, sandbox, caps);
    }
    SandboxPlan {
        mode,
        report: b.report,
        cgroups: b.cgroups,
        steps: b.steps,
        dynamic_user: b.dynamic_user,
        egress: b.egress.map(std::sync::Arc::new),
    }
}

fn network(b: &mut Builder, net: &Network, caps: &Capabilities) {
    let value = match net.mode {
        NetworkMode::None => "none".to_string(),
        NetworkMode::Loopback => "loopback".to_string(),
        NetworkMode::Host => "host".to_string(),
        NetworkMode::Egress => {
            let mut v = format!(
                "egress allowHosts={:?} allowPorts={:?}",
                net.allow_hosts, net.allow_ports
            );
            if !net.publish_tcp.is_empty() {
                let addrs: Vec<String> = net.publish_tcp.iter().map(ToString::to_string).collect();
                v.push_str(&format!(" publishTcp={addrs:?}"));
            }
            if !net.allow_cidrs.is_empty() {
                let cidrs: Vec<String> = net.allow_cidrs.iter().map(ToString::to_string).collect();
                v.push_str(&format!(" allowCidrs={cidrs:?}"));
            }
            v
        }
        NetworkMode::Allowlist => {
            let mut v = format!(
                "allowlist bindTcp={:?} connectTcp={:?}",
                net.bind_tcp, net.connect_tcp
            );
            if !net.bind_udp.is_empty() || !net.connect_udp.is_empty() {
                v.push_str(&format!(
                    " bindUdp={:?} connectUdp={:?}",
                    net.bind_udp, net.connect_udp
                ));
            }
            v
        }
    };
    // Defense in depth for `none`: even inside its namespace, no inet,
    // packet or netlink socket at all.
    let deny_inet = || {
        Families::Deny(vec![
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
            libc::AF_PACKET,
        ])
    };
    // A namespace of its own: as root directly; otherwise inside a user namespace.
    let netns = match (&caps.netns, &caps.userns) {
        (Ok(()), _) => Ok(("netns", false)),
        (Err(_), Ok(())) if !caps.root => Ok(("userns+netns", true)),
        (Err(a), Err(b)) if !caps.root => Err(format!("no user namespace ({b}); netns: {a}")),
        (Err(a), _) => Err(format!("no network namespace ({a})")),
    };
    match net.mode {
        NetworkMode::Host => b.ok("network", &value, "host network".into(), None),
        NetworkMode::None | NetworkMode::Loopback => match netns {
            Ok((mechanism, userns)) => {
                b.steps.new_netns = true;
                b.steps.new_userns = userns;
                b.steps.loopback_up = net.mode == NetworkMode::Loopback;
                let mut mechanism = mechanism.to_string();
                let mut note = None;
                if net.mode == NetworkMode::None {
                    match &caps.seccomp {
                        Ok(()) => {
                            b.steps.seccomp = Some(deny_inet());
                            mechanism.push_str(", seccomp");
                            note = Some("inet, netlink and packet sockets are refused too".into());
                        }
                        Err(s) => note = Some(format!("inet sockets can still be created: {s}")),
                    }
                }
                b.ok("network", &value, mechanism, note);
            }
            Err(why) if net.mode == NetworkMode::None => match &caps.seccomp {
                Ok(()) => {
                    b.steps.seccomp = Some(deny_inet());
                    let note = format!("inet, netlink and packet sockets are refused ({why})");
                    b.ok("network", &value, "seccomp".into(), Some(note));
                }
                Err(s) => b.gap("network", &value, format!("{why}; seccomp: {s}")),
            },
            Err(why) => b.gap("network", &value, why),
        },
        NetworkMode::Egress if !net.publish_tcp.is_empty() && !caps.root => b.gap(
            "network",
            &value,
            "publishTcp needs root (the orchestrator joins the child's network namespace to forward)".into(),
        ),
        NetworkMode::Egress => match netns {
            Ok((mechanism, userns)) => {
                b.steps.new_netns = true;
                b.steps.new_userns = userns;
                b.steps.loopback_up = true;
                b.steps.egress_fd = Some(crate::egress::EGRESS_FD);
                b.egress = Some(crate::egress::Policy {
                    hosts: net.allow_hosts.clone(),
                    ports: net.allow_ports.clone(),
                    cidrs: net.allow_cidrs.clone(),
                    publish: net.publish_tcp.clone(),
                });
                let mut mechanism = format!("{mechanism}+egress-proxy");
                let mut note = "only lo, where 127.0.0.1:<port> is its proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY): the orchestrator resolves the names, refuses private, loopback, link-local, multicast, CGNAT and metadata addresses, and connects to the address it checked".to_string();
                match &caps.seccomp {
                    Ok(()) => {
                        b.steps.seccomp = Some(Families::Allowlist { udp: false });
                        mechanism.push_str(", seccomp");
                        note.push_str("; only unix sockets and TCP streams");
                    }
                    Err(s) => note.push_str(&format!("; any socket family can be created: {s}")),
                }
                if !net.publish_tcp.is_empty() {
                    note.push_str("; publishTcp: the orchestrator listens there and forwards each connection to the same port on 127.0.0.1 inside");
                }
                b.ok("network", &value, mechanism, Some(note));
            }
            Err(why) => b.gap("network", &value, why),
        },
        NetworkMode::Allowlist => {
            let abi = match &caps.landlock_abi {
                Ok(abi) if *abi >= LANDLOCK_TCP_ABI => *abi,
                Ok(abi) => {
                    let why = format!(
                        "Landlock ABI {abi} has no TCP port rules (needs ≥ {LANDLOCK_TCP_ABI})"
                    );
                    return b.gap("network", &value, why);
                }
                Err(why) => return b.gap("network", &value, why.clone()),
            };
            if let Err(why) = &caps.seccomp {
                return b.gap("network", &value, format!("address families: {why}"));
            }
            let udp = !net.bind_udp.is_empty() || !net.connect_udp.is_empty();
            if udp && abi < LANDLOCK_UDP_ABI {
                let why = format!(
                    "UDP ports cannot be enforced: Landlock ABI {abi} has no UDP rules (needs ≥ {LANDLOCK_UDP_ABI})"
                );
                if b.steps.strict {
                    return b.gap("network", &value, why);
                }
                // bestEffort: TCP as asked, UDP sockets allowed to any port.
                b.gap("udp", &value, why);
            }
            b.steps.landlock = Some(LandlockNet {
                abi,
                bind_tcp: net.bind_tcp.clone(),
                connect_tcp: net.connect_tcp.clone(),
                bind_udp: net.bind_udp.clone(),
                connect_udp: net.connect_udp.clone(),
            });
            b.steps.seccomp = Some(Families::Allowlist { udp });
            let sockets =
                "only unix sockets and TCP streams (protocol 0 or TCP: no raw, MPTCP or SCTP)";
            let note = match (udp, abi < LANDLOCK_UDP_ABI) {
                (false, true) => format!(
                    "{sockets}; UDP sockets are refused by seccomp (Landlock ABI {abi} < {LANDLOCK_UDP_ABI} has no UDP rules)"
                ),
                (false, false) => format!("{sockets}; UDP is refused"),
                (true, true) => format!(
                    "{sockets}, and UDP datagrams to any port (Landlock ABI {abi} < {LANDLOCK_UDP_ABI} cannot restrict UDP ports)"
                ),
                (true, false) => format!("{sockets}, and UDP datagrams on the listed ports"),
            };
            let mechanism = format!("landlock-abi-{abi}, seccomp");
            b.ok("network", &value, mechanism, Some(note));
        }
    }
}

pub(super) struct Builder {
    pub(super) report: Vec<LimitReport>,
    pub(super) cgroups: Vec<CgroupLimit>,
    pub(super) steps: ChildSteps,
    pub(super) dynamic_user: bool,
    pub(super) egress: Option<crate::egress::Policy>,
}

impl Builder {
    pub(super) fn ok(&mut self, limit: &str, value: &str, mechanism: String, note: Option<String>) {
        self.report.push(LimitReport {
            limit: limit.into(),
            value: value.into(),
            enforced: true,
            mechanism,
            note,
        });
    }

    pub(super) fn gap(&mut self, limit: &str, value: &str, why: String) {
        self.report.push(LimitReport {
            limit: limit.into(),
            value: value.into(),
            enforced: false,
            mechanism: format!("not enforced: {why}"),
            note: None,
        });
    }

    fn rlimit(&mut self, resource: RlimitKind, value: u64) {
        self.steps.rlimits.push(Rlimit { resource, value });
    }

    fn cgroup(
        &mut self,
        limit: &str,
        value: &str,
        controller: Controller,
        home: &CgroupHome,
        files: Vec<(&str, String)>,
    ) {
        self.cgroups.push(CgroupLimit {
            controller,
            home: home.clone(),
            files: files.into_iter().map(|(f, v)| (f.to_string(), v)).collect(),
        });
        self.ok(limit, value, home.version.mechanism().into(), None);
    }
}

/// Bytes as the bundle would write them: `256Mi`, `1Gi`, `1000`.
pub(crate) fn size(bytes: u64) -> String {
    for (unit, factor) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    bytes.to_string()
}
