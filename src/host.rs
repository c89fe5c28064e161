//! The process's own limits: open files, and who it runs as.
//!
//! Every AWS call, state write and HTTP connection takes a file descriptor. If HTTP
//! clients could take them all, AWS calls and state writes would fail with "too many
//! open files" while the loops kept "completing" passes. So the daemon raises its soft
//! limit to the hard one at start, keeps [`RESERVED_FDS`] for its own work, and lets HTTP
//! hold at most the rest (see [`http_connections`]).

/// Descriptors kept for AWS connections (a pool per service and region), the state file,
/// the control token, stdio, the runtime's own and the listener.
pub const RESERVED_FDS: u64 = 48;

/// HTTP connections at most, however many descriptors there are: the control API is for
/// an operator and a metrics scraper, not for traffic.
pub const MAX_HTTP_CONNECTIONS: usize = 64;

/// HTTP connections at least, even under a tiny limit (a warning says so).
pub const MIN_HTTP_CONNECTIONS: usize = 4;

/// The open-file limit after raising the soft limit to the hard one (at most 65,536).
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) != 0 {
            return 1024;
        }
        let wanted = lim.rlim_max.min(65_536);
        if wanted > lim.rlim_cur {
            let raised = libc::rlimit { rlim_cur: wanted, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) == 0 {
                lim.rlim_cur = wanted;
            }
        }
    }
    lim.rlim_cur
}

/// How many HTTP connections the listener may hold under an open-file limit of `nofile`.
pub fn http_connections(nofile: u64) -> usize {
    let spare = usize::try_from(nofile.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX);
    spare.clamp(MIN_HTTP_CONNECTIONS, MAX_HTTP_CONNECTIONS)
}

/// Hands memory freed after a burst (a thousand query-log pages parsed and dropped) back
/// to the system. glibc keeps freed small allocations in its arenas, so without this the
/// resident set stays at its peak long after the burst.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and trims the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_never_takes_the_descriptors_the_daemon_needs() {
        assert_eq!(http_connections(64), 16);
        assert_eq!(http_connections(1024), MAX_HTTP_CONNECTIONS);
        assert_eq!(http_connections(20), MIN_HTTP_CONNECTIONS);
    }

    #[test]
    fn the_soft_limit_is_raised_to_at_least_what_it_was() {
        let before = {
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: plain getrlimit into a local struct.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) };
            lim.rlim_cur
        };
        assert!(raise_nofile() >= before.min(65_536));
    }
}
