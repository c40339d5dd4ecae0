//! What one phase of a client run cost this process: CPU (getrusage, every thread,
//! user + system), wall time, and the peak resident set while it ran.

use std::time::{Duration, Instant};

/// This process's CPU time so far, user + system, all threads.
pub fn cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given; the struct is
    // zero-initialised, so it is valid whether or not the call fills it.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A `/proc/self/status` field in KiB (`VmHWM`, `VmRSS`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The start of a phase.
pub struct Mark {
    cpu: Duration,
    wall: Instant,
}

/// Starts a phase: resets the peak-RSS mark (VmHWM) to the current RSS, so the
/// phase's peak is its own.
pub fn start() -> Mark {
    // "5" resets the peak RSS of this process (Linux 4.0+, proc(5)).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    Mark {
        cpu: cpu(),
        wall: Instant::now(),
    }
}

/// What a phase cost.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: String,
    pub records: u64,
    pub cpu: Duration,
    pub wall: Duration,
    /// Peak RSS during the phase (VmHWM after a reset at its start).
    pub peak_kib: u64,
    /// At the phase's end: resident anonymous memory (heap, stacks) and resident
    /// file pages (the program's and its libraries' code and data).
    pub anon_kib: u64,
    pub file_kib: u64,
}

impl Mark {
    pub fn end(self, name: &str, records: u64) -> Phase {
        Phase {
            name: name.to_owned(),
            records,
            cpu: cpu() - self.cpu,
            wall: self.wall.elapsed(),
            peak_kib: status_kib("VmHWM"),
            anon_kib: status_kib("RssAnon"),
            file_kib: status_kib("RssFile"),
        }
    }
}

impl Phase {
    /// One line the orchestrator parses.
    pub fn line(&self) -> String {
        format!(
            "RESULT phase={} records={} cpu_ns={} wall_ns={} peak_kib={} anon_kib={} file_kib={}",
            self.name,
            self.records,
            self.cpu.as_nanos(),
            self.wall.as_nanos(),
            self.peak_kib,
            self.anon_kib,
            self.file_kib
        )
    }

    pub fn parse(line: &str) -> Option<Phase> {
        let rest = line.strip_prefix("RESULT ")?;
        let mut p = Phase {
            name: String::new(),
            records: 0,
            cpu: Duration::ZERO,
            wall: Duration::ZERO,
            peak_kib: 0,
            anon_kib: 0,
            file_kib: 0,
        };
        for field in rest.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            match k {
                "phase" => p.name = v.to_owned(),
                "records" => p.records = v.parse().ok()?,
                "cpu_ns" => p.cpu = Duration::from_nanos(v.parse().ok()?),
                "wall_ns" => p.wall = Duration::from_nanos(v.parse().ok()?),
                "peak_kib" => p.peak_kib = v.parse().ok()?,
                "anon_kib" => p.anon_kib = v.parse().ok()?,
                "file_kib" => p.file_kib = v.parse().ok()?,
                _ => {}
            }
        }
        Some(p)
    }
}
