//! Plan computation against injected capabilities: table-driven.

use std::path::PathBuf;

use super::*;
use crate::bundle::{Network, NetworkMode, Resources, Sandbox, SandboxMode};

fn home(version: CgroupVersion, c: &str) -> Result<CgroupHome, String> {
    Ok(CgroupHome {
        version,
        dir: PathBuf::from(format!("/sys/fs/cgroup/{c}/orchestrator/1")),
    })
}

pub(super) fn root_v1() -> Capabilities {
    Capabilities {
        root: true,
        netns: Ok(()),
        userns: Ok(()),
        pidns: Ok(()),
        landlock_abi: Ok(7),
        seccomp: Ok(()),
        memory: home(CgroupVersion::V1, "memory"),
        pids: home(CgroupVersion::V1, "pids"),
        cpu: home(CgroupVersion::V1, "cpu"),
    }
}

pub(super) fn root_v2() -> Capabilities {
    Capabilities {
        landlock_abi: Ok(10),
        memory: home(CgroupVersion::V2, "unified"),
        pids: home(CgroupVersion::V2, "unified"),
        cpu: home(CgroupVersion::V2, "unified"),
        ..root_v1()
    }
}

pub(super) fn unprivileged() -> Capabilities {
    let no = || Err("cannot create /sys/fs/cgroup/x: Permission denied".to_string());
    Capabilities {
        root: false,
        netns: Err("needs root (CAP_SYS_ADMIN)".into()),
        userns: Ok(()),
        pidns: Err("needs root (CAP_SYS_ADMIN)".into()),
        landlock_abi: Ok(7),
        seccomp: Ok(()),
        memory: no(),
        pids: no(),
        cpu: no(),
    }
}

pub(super) fn bare() -> Capabilities {
    Capabilities {
        userns: Err("unshare: Operation not permitted".into()),
        landlock_abi: Err("Landlock unavailable".into()),
        seccomp: Err("seccomp unavailable".into()),
        ..unprivileged()
    }
}

pub(super) fn users(name: &str) -> Result<UserIds, String> {
    match name {
        "svc" => Ok(UserIds { uid: 990, gid: 991 }),
        _ => Err(format!("no user `{name}` on this machine")),
    }
}

pub(super) fn sandbox(
    mode: SandboxMode,
    net: Option<NetworkMode>,
    user: Option<&str>,
    r: Resources,
) -> Sandbox {
    Sandbox {
        mode,
        user: user.map(str::to_string),
        network: net.map(|mode| Network {
            mode,
            bind_tcp: if mode == NetworkMode::Allowlist {
                vec![3000]
            } else {
                vec![]
            },
            connect_tcp: if mode == NetworkMode::Allowlist {
                vec![443]
            } else {
                vec![]
            },
            bind_udp: vec![],
            connect_udp: vec![],
            allow_hosts: if mode == NetworkMode::Egress {
                vec!["api.example.com".into(), "*.example.org".into()]
            } else {
                vec![]
            },
            allow_ports: if mode == NetworkMode::Egress {
                vec![443]
            } else {
                vec![]
            },
            allow_cidrs: vec![],
            publish_tcp: vec![],
        }),
        resources: r,
        capabilities: vec![],
        filesystem: crate::bundle::Filesystem::default(),
    }
}

pub(super) fn all() -> Resources {
    Resources {
        memory_max: Some(256 << 20),
        tasks_max: Some(64),
        cpu_quota: Some(50),
        nofile: Some(1024),
        core: Some(0),
    }
}

/// The confinement rows every sandboxed child has (see `harden.rs`).
pub(super) const CONFINEMENT: [&str; 7] = [
    "noNewPrivs",
    "capabilities",
    "dumpable",
    "pidNamespace",
    "filesystem",
    "syscalls",
    "signals",
];

/// `(limit, mechanism)` of each report entry but the confinement rows.
fn mechanisms(plan: &SandboxPlan) -> Vec<(String, String)> {
    plan.report
        .iter()
        .filter(|r| !CONFINEMENT.contains(&r.limit.as_str()))
        .map(|r| (r.limit.clone(), r.mechanism.clone()))
        .collect()
}

#[test]
fn mechanisms_per_machine() {
    use NetworkMode::{Allowlist, Host, Loopback};
    use SandboxMode::{BestEffort, Enforce, Off};
    let none = Some(NetworkMode::None);
    let nn = "not enforced: ";
    // (name, sandbox, machine, [(limit, mechanism prefix)], refused in enforce)
    type Case = (
        &'static str,
        Sandbox,
        Capabilities,
        Vec<(&'static str, &'static str)>,
        bool,
    );
    let cases: Vec<Case> = vec![
        (
            "root, cgroup v1",
            sandbox(Enforce, none, Some("svc"), all()),
            root_v1(),
            vec![
                ("user", "setuid"),
                ("network", "netns"),
                ("memoryMax", "cgroup-v1"),
                ("tasksMax", "cgroup-v1"),
                ("cpuQuota", "cgroup-v1"),
                ("nofile", "rlimit"),
                ("core", "rlimit"),
            ],
            false,
        ),
        (
            "root, cgroup v2, allowlist",
            sandbox(Enforce, Some(Allowlist), None, all()),
            root_v2(),
            vec![
                ("network", "landlock-abi-10, seccomp"),
                ("memoryMax", "cgroup-v2"),
                ("tasksMax", "cgroup-v2"),
                ("cpuQuota", "cgroup-v2"),
                ("nofile", "rlimit"),
                ("core", "rlimit"),
            ],
            false,
        ),
        (
            "unprivileged: user namespace, rlimits, gaps",
            sandbox(Enforce, Some(Loopback), Some("svc"), all()),
            unprivileged(),
            vec![
                ("user", "not enforced: the orchestrator is not root"),
                ("network", "userns+netns"),
                ("memoryMax", "rlimit"),
                ("tasksMax", nn),
                ("cpuQuota", nn),
                ("nofile", "rlimit"),
                ("core", "rlimit"),
            ],
            true,
        ),
        (
            "unprivileged, no namespaces: seccomp for none",
            sandbox(BestEffort, none, None, Resources::default()),
            Capabilities {
                userns: Err("unshare: EPERM".into()),
                ..unprivileged()
            },
            vec![("network", "seccomp")],
            false,
        ),
        (
            "nothing available",
            sandbox(Enforce, none, None, Resources::default()),
            bare(),
            vec![("network", nn)],
            true,
        ),
        (
            "loopback has no fallback",
            sandbox(Enforce, Some(Loopback), None, Resources::default()),
            Capabilities {
                userns: Err("unshare: EPERM".into()),
                ..unprivileged()
            },
            vec![("network", nn)],
            true,
        ),
        (
            "Landlock too old for TCP rules",
            sandbox(Enforce, Some(Allowlist), None, Resources::default()),
            Capabilities {
                landlock_abi: Ok(3),
                ..root_v1()
            },
            vec![(
                "network",
                "not enforced: Landlock ABI 3 has no TCP port rules",
            )],
            true,
        ),
        (
            "tasksMax falls back to RLIMIT_NPROC under a dedicated uid",
            sandbox(
                Enforce,
                Some(Host),
                Some("svc"),
                Resources {
                    tasks_max: Some(8),
                    ..Resources::default()
                },
            ),
            Capabilities {
                pids: Err("disabled".into()),
                ..root_v1()
            },
            vec![
                ("user", "setuid"),
                ("network", "host network"),
                ("tasksMax", "rlimit"),
            ],
            false,
        ),
        (
            "an unknown user cannot be enforced",
            sandbox(Enforce, None, Some("ghost"), Resources::default()),
            root_v1(),
            vec![("user", "not enforced: no user `ghost`")],
            true,
        ),
        (
            "off: nothing applied, nothing refused",
            sandbox(Off, none, None, all()),
            root_v1(),
            vec![
                ("network", "not enforced: sandbox mode is off"),
                ("memoryMax", "not enforced: sandbox mode is off"),
                ("tasksMax", "not enforced: sandbox mode is off"),
                ("cpuQuota", "not enforced: sandbox mode is off"),
                ("nofile", "not enforced: sandbox mode is off"),
                ("core", "not enforced: sandbox mode is off"),
            ],
            false,
        ),
    ];
    for (name, sb, caps, expected, refused) in cases {
        let plan = plan(&sb, &caps, &users);
        let got = mechanisms(&plan);
        assert_eq!(got.len(), expected.len(), "{name}: {got:?}");
        for ((limit, mechanism), (want_limit, want)) in got.iter().zip(&expected) {
            assert_eq!(limit, want_limit, "{name}: {got:?}");
            assert!(mechanism.starts_with(want), "{name}: {limit}: {mechanism}");
        }
        assert_eq!(
            plan.refusal().is_some(),
            refused,
            "{name}: {:?}",
            plan.refusal()
        );
        if sb.mode == Off {
            assert!(!plan.has_steps(), "{name}");
        }
    }
}

#[test]
fn steps_follow_the_mechanisms() {
    let p = plan(
        &sandbox(SandboxMode::Enforce, Some(NetworkMode::None), None, all()),
        &root_v1(),
        &users,
    );
    assert!(p.steps.strict && p.steps.new_netns && !p.steps.new_userns && !p.steps.loopback_up);
    let files: Vec<_> = p.cgroups.iter().flat_map(|c| c.files.clone()).collect();
    assert!(files.contains(&("memory.limit_in_bytes".into(), (256u64 << 20).to_string())));
    assert!(files.contains(&("pids.max".into(), "64".into())));
    assert!(files.contains(&("cpu.cfs_quota_us".into(), "50000".into())));
    let kinds: Vec<_> = p.steps.rlimits.iter().map(|r| r.resource).collect();
    assert_eq!(kinds, [RlimitKind::Nofile, RlimitKind::Core]);

    let p = plan(
        &sandbox(
            SandboxMode::BestEffort,
            Some(NetworkMode::Loopback),
            None,
            all(),
        ),
        &unprivileged(),
        &users,
    );
    assert!(!p.steps.strict && p.steps.new_netns && p.steps.new_userns && p.steps.loopback_up);
    assert!(p.cgroups.is_empty());
    assert!(p.steps.rlimits.contains(&Rlimit {
        resource: RlimitKind::As,
        value: 256 << 20
    }));
    assert!(p.refusal().is_none(), "bestEffort never refuses");
    assert_eq!(p.gaps().len(), 2, "{:?}", p.gaps());

    let p = plan(
        &sandbox(
            SandboxMode::Enforce,
            Some(NetworkMode::Allowlist),
            None,
            Resources::default(),
        ),
        &root_v1(),
        &users,
    );
    let rules = p.steps.landlock.clone().expect("landlock");
    assert_eq!(
        (rules.abi, rules.bind_tcp, rules.connect_tcp),
        (7, vec![3000], vec![443])
    );
    assert_eq!(p.steps.seccomp, Some(Families::Allowlist { udp: false }));
    let note = p.report[0].note.clone().unwrap_or_default();
    assert!(
        note.contains("UDP sockets are refused by seccomp (Landlock ABI 7 < 10"),
        "{note}"
    );
    assert!(note.contains("no raw, MPTCP"), "{note}");
    assert_eq!(
        p.report[0].value,
        "allowlist bindTcp=[3000] connectTcp=[443]"
    );

    let p = plan(
        &sandbox(
            SandboxMode::Enforce,
            None,
            Some("svc"),
            Resources {
                memory_max: Some(3 << 30),
                ..Resources::default()
            },
        ),
        &root_v2(),
        &users,
    );
    assert_eq!(p.steps.user, Some(UserIds { uid: 990, gid: 991 }));
    assert_eq!(p.report[1].value, "3Gi");
    assert!(
        p.cgroups[0]
            .files
            .contains(&("memory.max".into(), (3u64 << 30).to_string()))
    );
}

#[test]
fn refusal_names_each_limit_and_why() {
    let caps = Capabilities {
        pids: Err("disabled by ORCHESTRATOR_SANDBOX_DISABLE".into()),
        cpu: Err("disabled by ORCHESTRATOR_SANDBOX_DISABLE".into()),
        ..root_v1()
    };
    let p = plan(
        &sandbox(SandboxMode::Enforce, None, None, all()),
        &caps,
        &users,
    );
    let why = p.refusal().expect("refused");
    assert!(
        why.starts_with("sandbox (enforce) refuses to start: cannot apply "),
        "{why}"
    );
    assert!(
        why.contains(
            "tasksMax=64: not enforced: no pids cgroup (disabled by ORCHESTRATOR_SANDBOX_DISABLE)"
        ),
        "{why}"
    );
    assert!(
        why.contains("cpuQuota=50%: not enforced: no cpu cgroup"),
        "{why}"
    );
}

#[test]
fn steps_survive_the_shim_argument() {
    let p = plan(
        &sandbox(
            SandboxMode::Enforce,
            Some(NetworkMode::Allowlist),
            Some("svc"),
            all(),
        ),
        &root_v1(),
        &users,
    );
    let json = serde_json::to_string(&p.steps).unwrap();
    let back: ChildSteps = serde_json::from_str(&json).unwrap();
    assert_eq!(back, p.steps);
}

#[test]
fn oom_kills_reads_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("memory.events"),
        "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
    )
    .unwrap();
    assert_eq!(oom_kills(CgroupVersion::V1, dir.path()), 2);
    assert_eq!(oom_kills(CgroupVersion::V2, dir.path()), 1);
    assert_eq!(oom_kills(CgroupVersion::V1, &dir.path().join("gone")), 0);
}

#[test]
fn sizes_print_as_written() {
    assert_eq!(plan::size(256 << 20), "256Mi");
    assert_eq!(plan::size(1 << 30), "1Gi");
    assert_eq!(plan::size(1536), "1536");
    assert_eq!(plan::size(0), "0");
}
