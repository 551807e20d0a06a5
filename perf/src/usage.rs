//! CPU time and peak memory of this process, from `getrusage(2)`.

/// Resource usage of the whole process so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessUsage {
    /// User plus system CPU seconds, all threads.
    pub cpu_seconds: f64,
    /// Peak resident set size in bytes.
    pub peak_rss_bytes: u64,
}

/// Reads the process's usage now.
#[allow(unsafe_code)]
pub fn process_usage() -> ProcessUsage {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a full `rusage` into the pointer we pass; RUSAGE_SELF is valid.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } == 0;
    if !ok {
        return ProcessUsage {
            cpu_seconds: 0.0,
            peak_rss_bytes: 0,
        };
    }
    // SAFETY: initialised by the successful call above (and zeroed before it).
    let ru = unsafe { ru.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    ProcessUsage {
        cpu_seconds: secs(ru.ru_utime) + secs(ru.ru_stime),
        // Linux reports kilobytes.
        peak_rss_bytes: (ru.ru_maxrss.max(0) as u64) * 1024,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_grows_with_work() {
        let a = super::process_usage();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let b = super::process_usage();
        assert!(b.cpu_seconds >= a.cpu_seconds);
        assert!(b.peak_rss_bytes > 0);
    }
}
