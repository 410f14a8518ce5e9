//! The seccomp filters of a sandboxed child: which sockets it may create,
//! and the syscalls that reach other processes or the kernel, refused.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use super::Families;

/// The syscalls every sandboxed child is refused (`EPERM`), as status lists them.
pub const DENIED: &str = "ptrace, process_vm_readv, process_vm_writev, kcmp, bpf, perf_event_open, mount (and the new mount API), umount2, pivot_root, setns, unshare, clone with namespace flags, keyctl, add_key, request_key, open_by_handle_at";

/// `socket(2)`'s type argument: the type is in these bits, the rest are
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC` (anything else is `EINVAL` anyway).
const SOCK_TYPE_MASK: u64 = 0xf;

/// Namespace flags `clone(2)` must not carry (`CLONE_NEWTIME` shares its bit
/// with the exit signal there, and only `clone3`/`unshare` take it).
const CLONE_NAMESPACES: [i32; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

fn cond(arg: u8, op: SeccompCmpOp, value: i64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value as u64)
        .map_err(|e| format!("seccomp: {e}"))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conds).map_err(|e| format!("seccomp: {e}"))
}

/// A filter that answers `errno` to the listed syscalls when one of their
/// rules matches (an empty list: always), and allows everything else.
fn build(rules: Vec<(i64, Vec<SeccompRule>)>, errno: i32) -> Result<BpfProgram, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: {e}"))?;
    let rules: BTreeMap<i64, Vec<SeccompRule>> = rules.into_iter().collect();
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch,
    )
    .and_then(TryInto::try_into)
    .map_err(|e| format!("seccomp: {e}"))
}

/// BPF programs for `families`: `socket`/`socketpair` of another family
/// fail with `EAFNOSUPPORT`; for the allowlist an inet socket of another
/// type or protocol (raw, MPTCP, SCTP, ICMP, UDP unless allowed) with
/// `EPROTONOSUPPORT`; and `io_uring_setup` (whose socket opcode would
/// bypass the filter) with `EPERM`.
pub fn socket_filters(families: &Families) -> Result<Vec<BpfProgram>, String> {
    use SeccompCmpOp::{Eq, MaskedEq, Ne};
    let (family_rules, pair_rules) = match families {
        Families::Allowlist { .. } => {
            let other = rule(vec![
                cond(0, Ne, libc::AF_UNIX.into())?,
                cond(0, Ne, libc::AF_INET.into())?,
                cond(0, Ne, libc::AF_INET6.into())?,
            ])?;
            let pair = rule(vec![cond(0, Ne, libc::AF_UNIX.into())?])?;
            (vec![other], vec![pair])
        }
        Families::Deny(denied) => {
            let rules = denied
                .iter()
                .map(|f| rule(vec![cond(0, Eq, (*f).into())?]))
                .collect::<Result<Vec<_>, _>>()?;
            (rules.clone(), rules)
        }
    };
    let mut filters = vec![build(
        vec![
            (libc::SYS_socket, family_rules),
            (libc::SYS_socketpair, pair_rules),
        ],
        libc::EAFNOSUPPORT,
    )?];
    if let Families::Allowlist { udp } = families {
        let mut rules = Vec::new();
        for family in [libc::AF_INET, libc::AF_INET6] {
            let family = i64::from(family);
            let stream = i64::from(libc::SOCK_STREAM);
            let dgram = i64::from(libc::SOCK_DGRAM);
            for ty in 0..=SOCK_TYPE_MASK as i64 {
                if ty == stream || (*udp && ty == dgram) {
                    continue;
                }
                rules.push(rule(vec![
                    cond(0, Eq, family)?,
                    cond(1, MaskedEq(SOCK_TYPE_MASK), ty)?,
                ])?);
            }
            rules.push(rule(vec![
                cond(0, Eq, family)?,
                cond(1, MaskedEq(SOCK_TYPE_MASK), stream)?,
                cond(2, Ne, 0)?,
                cond(2, Ne, libc::IPPROTO_TCP.into())?,
            ])?);
            if *udp {
                rules.push(rule(vec![
                    cond(0, Eq, family)?,
                    cond(1, MaskedEq(SOCK_TYPE_MASK), dgram)?,
                    cond(2, Ne, 0)?,
                    cond(2, Ne, libc::IPPROTO_UDP.into())?,
                ])?);
            }
        }
        filters.push(build(
            vec![(libc::SYS_socket, rules)],
            libc::EPROTONOSUPPORT,
        )?);
    }
    filters.push(build(
        vec![(libc::SYS_io_uring_setup, Vec::new())],
        libc::EPERM,
    )?);
    Ok(filters)
}

/// BPF programs refusing [`DENIED`] with `EPERM` (and `clone3`, whose flags
/// seccomp cannot read, with `ENOSYS`, so libc falls back to `clone`).
pub fn deny_filters() -> Result<Vec<BpfProgram>, String> {
    let always = [
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_kcmp,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_open_by_handle_at,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
    ];
    let mut rules: Vec<(i64, Vec<SeccompRule>)> =
        always.iter().map(|nr| (*nr, Vec::new())).collect();
    let clone_rules = CLONE_NAMESPACES
        .iter()
        .map(|flag| {
            let flag = i64::from(*flag);
            rule(vec![cond(0, SeccompCmpOp::MaskedEq(flag as u64), flag)?])
        })
        .collect::<Result<Vec<_>, _>>()?;
    rules.push((libc::SYS_clone, clone_rules));
    Ok(vec![
        build(rules, libc::EPERM)?,
        build(vec![(libc::SYS_clone3, Vec::new())], libc::ENOSYS)?,
    ])
}

/// Installs `filters`, in order.
pub fn install(filters: &[BpfProgram]) -> Result<(), String> {
    filters
        .iter()
        .try_for_each(|f| seccompiler::apply_filter(f).map_err(|e| format!("cannot install: {e}")))
}
