//! Network pieces the shim's child uses: bringing `lo` up in a fresh network
//! namespace, and keeping it there.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule};

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
