//! Process metrics in Prometheus's standard names (`process_*`), read from `/proc/self` on
//! Linux; elsewhere only the start time is known and the rest is left out.

use crate::dns::metrics::header;
use std::fmt::Write as _;
use std::time::SystemTime;

/// Appends the process families to `out`. `started` is when the server started.
pub fn render(out: &mut String, started: SystemTime) {
    let start = started.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    header(
        out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
    );
    let _ = writeln!(out, "process_start_time_seconds {start:.3}");
    // Fields after the command name (which may hold spaces) in /proc/self/stat.
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let num = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // After the name: state is field 3, utime 14 and stime 15, vsize 23, rss 24 (man 5 proc);
    // here counted from 0 at the state.
    if let (Some(utime), Some(stime)) = (num(11), num(12)) {
        header(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        let _ = writeln!(
            out,
            "process_cpu_seconds_total {:.2}",
            (utime + stime) / crate::sys::clock_ticks()
        );
    }
    if let Some(vsize) = num(20) {
        header(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        let _ = writeln!(out, "process_virtual_memory_bytes {vsize}");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    if let Some(kb) = rss_kb {
        header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        let _ = writeln!(out, "process_resident_memory_bytes {}", kb * 1024);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        header(out, "process_open_fds", "gauge", "Number of open file descriptors.");
        let _ = writeln!(out, "process_open_fds {}", dir.count());
    }
    let max_fds = std::fs::read_to_string("/proc/self/limits").ok().and_then(|l| {
        l.lines()
            .find(|x| x.starts_with("Max open files"))
            .and_then(|x| x.split_whitespace().nth(3).and_then(|v| v.parse::<u64>().ok()))
    });
    if let Some(m) = max_fds {
        header(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        let _ = writeln!(out, "process_max_fds {m}");
    }
}
