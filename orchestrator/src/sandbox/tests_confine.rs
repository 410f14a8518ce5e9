//! The confinement rows and steps every sandboxed child gets (`harden.rs`),
//! the socket rules of `allowlist` and `none`, and a dynamic user's plan.

use super::tests::{CONFINEMENT, bare, root_v1, sandbox, unprivileged, users};
use std::path::{Path, PathBuf};

use super::*;
use crate::bundle::{NetworkMode, Resources, SandboxMode};

fn row<'a>(p: &'a SandboxPlan, limit: &str) -> &'a LimitReport {
    p.report
        .iter()
        .find(|r| r.limit == limit)
        .unwrap_or_else(|| panic!("no {limit} in {:?}", p.report))
}

#[test]
fn root_gets_every_layer() {
    let p = plan(
        &sandbox(SandboxMode::Enforce, None, None, Resources::default()),
        &root_v1(),
        &users,
    );
    for limit in CONFINEMENT {
        assert!(row(&p, limit).enforced, "{limit}: {:?}", row(&p, limit));
    }
    assert_eq!(row(&p, "pidNamespace").mechanism, "pidns+mountns");
    assert_eq!(row(&p, "filesystem").mechanism, "landlock-abi-7, mountns");
    assert_eq!(row(&p, "signals").mechanism, "pidns, landlock-abi-7 scope");
    assert!(
        row(&p, "syscalls")
            .value
            .contains("ptrace, process_vm_readv")
    );
    let s = &p.steps;
    assert!(s.no_new_privs && s.pid_ns && s.deny_syscalls);
    assert_eq!(s.capabilities, Some(vec![]));
    assert!(s.mounts.as_ref().is_some_and(|m| m.private_tmp));
    assert_eq!(s.filesystem.as_ref().map(|f| f.abi), Some(7));
    assert!(p.refusal().is_none());
}

#[test]
fn kept_capabilities_are_named_and_numbered() {
    let mut sb = sandbox(SandboxMode::Enforce, None, None, Resources::default());
    sb.capabilities = vec!["CAP_NET_BIND_SERVICE".into(), "CAP_KILL".into()];
    let p = plan(&sb, &root_v1(), &users);
    assert_eq!(p.steps.capabilities, Some(vec![10, 5]));
    assert_eq!(
        row(&p, "capabilities").value,
        "keeps CAP_NET_BIND_SERVICE, CAP_KILL"
    );
}

#[test]
fn without_root_the_pid_namespace_is_a_noted_gap_not_a_refusal() {
    let p = plan(
        &sandbox(SandboxMode::Enforce, None, None, Resources::default()),
        &unprivileged(),
        &users,
    );
    let pidns = row(&p, "pidNamespace");
    assert!(!pidns.enforced && pidns.mechanism.starts_with("not enforced: needs root"));
    assert!(p.refusal().is_none(), "{:?}", p.refusal());
    let fs = row(&p, "filesystem");
    assert_eq!(fs.mechanism, "landlock-abi-7");
    assert!(
        fs.note
            .as_deref()
            .unwrap_or_default()
            .contains("control.sock")
    );
    assert_eq!(row(&p, "signals").mechanism, "landlock-abi-7 scope");
    assert!(!p.steps.pid_ns && p.steps.mounts.is_none());
}

#[test]
fn without_landlock_or_seccomp_enforce_refuses() {
    let p = plan(
        &sandbox(SandboxMode::Enforce, None, None, Resources::default()),
        &bare(),
        &users,
    );
    let why = p.refusal().expect("refused");
    for limit in ["filesystem=", "syscalls=", "signals="] {
        assert!(why.contains(limit), "{limit}: {why}");
    }
}

#[test]
fn mode_off_has_no_confinement() {
    let p = plan(
        &sandbox(SandboxMode::Off, None, None, Resources::default()),
        &root_v1(),
        &users,
    );
    assert!(p.report.is_empty() && !p.has_steps());
}

#[test]
fn none_denies_inet_sockets_inside_its_namespace_too() {
    let p = plan(
        &sandbox(
            SandboxMode::Enforce,
            Some(NetworkMode::None),
            None,
            Resources::default(),
        ),
        &root_v1(),
        &users,
    );
    assert_eq!(
        p.steps.seccomp,
        Some(Families::Deny(vec![
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
            libc::AF_PACKET
        ]))
    );
    assert_eq!(row(&p, "network").mechanism, "netns, seccomp");
}

#[test]
fn udp_ports_below_abi_10_refuse_in_enforce_and_open_udp_in_best_effort() {
    let mut sb = sandbox(
        SandboxMode::Enforce,
        Some(NetworkMode::Allowlist),
        None,
        Resources::default(),
    );
    if let Some(net) = &mut sb.network {
        net.connect_udp = vec![53];
    }
    let p = plan(&sb, &root_v1(), &users);
    let why = p.refusal().expect("refused");
    assert!(
        why.contains("UDP ports cannot be enforced: Landlock ABI 7"),
        "{why}"
    );

    sb.mode = SandboxMode::BestEffort;
    let p = plan(&sb, &root_v1(), &users);
    assert_eq!(p.steps.seccomp, Some(Families::Allowlist { udp: true }));
    assert!(!row(&p, "udp").enforced);
    assert!(row(&p, "network").enforced);
}

#[test]
fn dynamic_user_needs_root_and_counts_as_a_dedicated_uid() {
    let mut sb = sandbox(
        SandboxMode::Enforce,
        None,
        Some("dynamic"),
        Resources {
            tasks_max: Some(8),
            ..Resources::default()
        },
    );
    let caps = Capabilities {
        pids: Err("disabled".into()),
        ..root_v1()
    };
    let p = plan(&sb, &caps, &users);
    assert!(p.dynamic_user && p.steps.user.is_none());
    assert_eq!(row(&p, "user").mechanism, "setuid");
    assert_eq!(row(&p, "tasksMax").mechanism, "rlimit");
    assert!(p.refusal().is_none(), "{:?}", p.refusal());

    sb.resources = Resources::default();
    let p = plan(&sb, &unprivileged(), &users);
    assert!(!p.dynamic_user);
    assert!(row(&p, "user").mechanism.contains("not root"));
}

#[test]
fn seccomp_filters_compile() {
    for (f, n) in [
        (Families::Allowlist { udp: false }, 3),
        (Families::Allowlist { udp: true }, 3),
        (Families::Deny(vec![libc::AF_INET, libc::AF_INET6]), 2),
    ] {
        let progs = syscalls::socket_filters(&f).expect("compiles");
        assert_eq!(progs.len(), n);
        assert!(progs.iter().all(|p| !p.is_empty()));
    }
    let progs = syscalls::deny_filters().expect("compiles");
    assert!(progs.iter().all(|p| !p.is_empty()));
}

#[test]
fn carve_goes_around_hidden_paths_but_keeps_the_allowed_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    for sub in [
        "bundle/state/connections/p",
        "bundle/state/connections/q",
        "bundle/lib",
    ] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::write(root.join("bundle/bundle.yaml"), "secret").unwrap();
    std::fs::write(root.join("bundle/run.py"), "").unwrap();
    let hide = [root.join("bundle/state"), root.join("bundle/bundle.yaml")];
    let allow = root.join("bundle/state/connections/p");
    let mut got = confine::carve(&root.join("bundle"), &hide, Some(&allow));
    got.sort();
    assert_eq!(got, [root.join("bundle/lib"), root.join("bundle/run.py")]);
    assert_eq!(
        confine::carve(&allow, &hide, Some(&allow)),
        std::slice::from_ref(&allow),
        "its own state directory, inside the hidden one"
    );
    assert!(
        confine::carve(
            &root.join("bundle/state/connections/q"),
            &hide,
            Some(&allow)
        )
        .is_empty()
    );
    assert_eq!(
        confine::carve(Path::new("/usr"), &hide, None),
        [PathBuf::from("/usr")]
    );
}

#[test]
fn a_state_directory_is_given_to_its_user_but_not_a_hard_link_out_of_it() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: chown needs root");
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("sub")).unwrap();
    std::fs::write(state.join("sub/file"), "x").unwrap();
    let outside = dir.path().join("outside");
    std::fs::write(&outside, "root's").unwrap();
    std::fs::hard_link(&outside, state.join("link")).unwrap();
    std::os::unix::fs::symlink(&outside, state.join("symlink")).unwrap();
    let ids = UserIds {
        uid: 61_234,
        gid: 61_234,
    };
    let tmp = state.join("tmp");
    confine::own_state_dir(&state, Some(ids), Some(&tmp)).unwrap();
    let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
    assert_eq!(meta(&state).mode() & 0o777, 0o700);
    for owned in [&state, &state.join("sub"), &state.join("sub/file"), &tmp] {
        assert_eq!(meta(owned).uid(), 61_234, "{}", owned.display());
    }
    assert_eq!(
        meta(&state.join("symlink")).uid(),
        61_234,
        "the link itself"
    );
    assert_eq!(meta(&outside).uid(), 0, "not given away through a link");
    let _ = std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755));
}
