//! CPU time, resident memory and open file descriptors of a process, and the machine's busy
//! time, read from `/proc` (Linux). Used by the server's metrics endpoint for the server
//! itself, by the load generator for the server it measures and for itself, and by the tests
//! that watch a server process for leaks.

use std::fs;
use std::io;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    /// User plus system CPU time since the process started, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
}

/// Reads `/proc/<pid>` (`"self"` for this process).
pub fn sample(pid: &str) -> io::Result<ProcessSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let statm = fs::read_to_string(format!("/proc/{pid}/statm"))?;
    parse(&stat, &statm, clock_ticks_per_second(), page_size())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc format"))
}

/// Open file descriptors of `pid` (`"self"` for this process).
pub fn open_fds(pid: &str) -> io::Result<usize> {
    Ok(fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Busy and total jiffies of the whole machine (first line of `/proc/stat`); the ratio of two
/// readings' differences times the core count is the number of busy cores in between.
pub fn machine_jiffies() -> io::Result<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat")?;
    parse_machine(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/stat"))
}

fn parse(stat: &str, statm: &str, ticks_per_second: f64, page: u64) -> Option<ProcessSample> {
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is fields[0]; utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(ProcessSample {
        cpu_seconds: (utime + stime) / ticks_per_second,
        rss_bytes: resident_pages * page,
    })
}

fn parse_machine(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal ...
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    let total = busy + v.get(3)? + v.get(4)?;
    Some((busy, total))
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().filter(|&p| p > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces() {
        let stat =
            "42 (tick (main) x) S 1 42 42 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        let sample = parse(stat, "1000 300 20 1 0 50 0", 100.0, 4096).unwrap();
        assert_eq!(sample.cpu_seconds, 3.0);
        assert_eq!(sample.rss_bytes, 300 * 4096);
    }

    #[test]
    fn machine_busy_excludes_idle_and_iowait() {
        let (busy, total) =
            parse_machine("cpu  10 1 5 100 4 2 3 0 0 0\ncpu0 1 1 1 1 1 1 1\n").unwrap();
        assert_eq!(busy, 10 + 1 + 5 + 2 + 3);
        assert_eq!(total, busy + 100 + 4);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = sample("self").unwrap();
        assert!(sample.rss_bytes > 0);
        assert!(open_fds("self").unwrap() > 0);
    }
}
