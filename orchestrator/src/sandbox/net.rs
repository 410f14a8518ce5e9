//! Network pieces the shim's child uses: bringing `lo` up in a fresh network
//! namespace, and the seccomp filters on socket address families.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use super::Families;

/// Sets `IFF_UP` on `lo` (an `SIOCSIFFLAGS` ioctl: no `ip` binary needed).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain socket for the ioctl, closed below; `ifr` is a
    // zero-initialised C struct the kernel reads and writes in place.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = Ok(());
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            result = Err(io::Error::last_os_error());
        } else {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) < 0 {
                result = Err(io::Error::last_os_error());
            }
        }
        libc::close(fd);
        result
    }
}

/// A BPF program that refuses `setns` with `EPERM`: a child given its own
/// network namespace must not join another (as root it could open
/// `/proc/1/ns/net` and be back on the host's network).
pub fn deny_setns() -> Result<BpfProgram, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: {e}"))?;
    let rules: BTreeMap<i64, Vec<SeccompRule>> =
        [(libc::SYS_setns, Vec::new())].into_iter().collect();
    SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .and_then(TryInto::try_into)
    .map_err(|e| format!("seccomp: {e}"))
}

/// BPF programs that refuse `socket`/`socketpair` outside `families` with
/// `EAFNOSUPPORT`, and `io_uring_setup` (whose socket opcode would bypass
/// the first filter) with `EPERM`.
pub fn seccomp_filters(families: &Families) -> Result<Vec<BpfProgram>, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: {e}"))?;
    let cond = |op: SeccompCmpOp, family: i32| {
        SeccompCondition::new(0, SeccompCmpArgLen::Dword, op, family as u64)
            .map_err(|e| format!("seccomp: {e}"))
    };
    let rules: Vec<SeccompRule> = match families {
        // One rule, every condition must hold: the family is none of these.
        Families::Allow(allowed) => {
            let conds = allowed
                .iter()
                .map(|f| cond(SeccompCmpOp::Ne, *f))
                .collect::<Result<Vec<_>, _>>()?;
            vec![SeccompRule::new(conds).map_err(|e| format!("seccomp: {e}"))?]
        }
        // A rule per family: any of them matches.
        Families::Deny(denied) => denied
            .iter()
            .map(|f| {
                SeccompRule::new(vec![cond(SeccompCmpOp::Eq, *f)?])
                    .map_err(|e| format!("seccomp: {e}"))
            })
            .collect::<Result<_, _>>()?,
    };
    let sockets: BTreeMap<i64, Vec<SeccompRule>> = [
        (libc::SYS_socket, rules.clone()),
        (libc::SYS_socketpair, rules),
    ]
    .into_iter()
    .collect();
    let uring: BTreeMap<i64, Vec<SeccompRule>> = [(libc::SYS_io_uring_setup, Vec::new())]
        .into_iter()
        .collect();
    let build = |rules, errno: i32| -> Result<BpfProgram, String> {
        SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .and_then(TryInto::try_into)
        .map_err(|e| format!("seccomp: {e}"))
    };
    Ok(vec![
        build(sockets, libc::EAFNOSUPPORT)?,
        build(uring, libc::EPERM)?,
    ])
}
