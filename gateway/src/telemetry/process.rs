//! The process's own resource use, under the names Prometheus' client libraries give it
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), read from Linux's `/proc`
//! at each scrape, so one dashboard row fits every exporter an operator already runs.
//!
//! Parsing is plain functions over the files' text, tested with captured files; only
//! [`ProcessStats::read`] touches `/proc`. On a system without `/proc` nothing is reported.

use std::path::Path;

/// Linux's clock tick when `/proc/self/auxv` does not say (`USER_HZ`, 100 on every architecture
/// Causeway is built for).
const DEFAULT_CLOCK_TICKS: u64 = 100;
/// Page size when `/proc/self/auxv` does not say.
const DEFAULT_PAGE_SIZE: u64 = 4096;
/// `AT_PAGESZ` and `AT_CLKTCK` in the ELF auxiliary vector (`<elf.h>`).
const AT_PAGESZ: u64 = 6;
const AT_CLKTCK: u64 = 17;

/// One reading of the process's resource use.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: f64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: f64,
    /// When the process started, in Unix seconds.
    pub start_time_seconds: f64,
    /// Open file descriptors.
    pub open_fds: Option<f64>,
    /// The soft limit on open file descriptors (`RLIMIT_NOFILE`); `None` when unlimited.
    pub max_fds: Option<f64>,
}

impl ProcessStats {
    /// Read this process's stats from `/proc`; `None` where there is no `/proc` or it cannot be
    /// read (then no `process_*` metric is reported).
    pub fn read() -> Option<ProcessStats> {
        let proc = Path::new("/proc");
        let stat = std::fs::read_to_string(proc.join("self/stat")).ok()?;
        let boot = std::fs::read_to_string(proc.join("stat")).ok()?;
        let (ticks, page) = std::fs::read(proc.join("self/auxv"))
            .map(|auxv| auxv_sizes(&auxv))
            .unwrap_or((DEFAULT_CLOCK_TICKS, DEFAULT_PAGE_SIZE));
        let mut stats = parse_stat(&stat, &boot, ticks, page)?;
        stats.open_fds = std::fs::read_dir(proc.join("self/fd"))
            .ok()
            .map(|dir| dir.count() as f64);
        stats.max_fds = std::fs::read_to_string(proc.join("self/limits"))
            .ok()
            .and_then(|limits| parse_max_fds(&limits));
        Some(stats)
    }
}

/// The clock tick rate and page size from the ELF auxiliary vector (pairs of native words).
fn auxv_sizes(auxv: &[u8]) -> (u64, u64) {
    const WORD: usize = std::mem::size_of::<usize>();
    let (mut ticks, mut page) = (DEFAULT_CLOCK_TICKS, DEFAULT_PAGE_SIZE);
    let word = |bytes: &[u8]| {
        let mut w = [0u8; WORD];
        w.copy_from_slice(bytes);
        usize::from_ne_bytes(w) as u64
    };
    for pair in auxv.chunks_exact(2 * WORD) {
        let (key, value) = (word(&pair[..WORD]), word(&pair[WORD..]));
        match key {
            AT_CLKTCK if value > 0 => ticks = value,
            AT_PAGESZ if value > 0 => page = value,
            0 => break,
            _ => {}
        }
    }
    (ticks, page)
}

/// CPU time, memory and start time from `/proc/self/stat` (proc(5)), with the boot time from
/// `/proc/stat`'s `btime` line.
fn parse_stat(stat: &str, boot: &str, ticks: u64, page: u64) -> Option<ProcessStats> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself:
    // the fields that follow start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let (utime, stime) = (field(14)?, field(15)?);
    let (start_ticks, vsize, rss) = (field(22)?, field(23)?, field(24)?);
    let btime = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<u64>()
        .ok()?;
    let ticks = ticks as f64;
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / ticks,
        resident_bytes: (rss * page) as f64,
        virtual_bytes: vsize as f64,
        start_time_seconds: btime as f64 + start_ticks as f64 / ticks,
        open_fds: None,
        max_fds: None,
    })
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    soft.parse::<u64>().ok().map(|n| n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "15085 (tokio (rt) x) R 15079 15079 8239 0 -1 4194304 102 0 0 0 250 50 0 0 20 0 1 0 35290 2998272 420 18446744073709551615 94735313993728 0\n";

    #[test]
    fn reads_proc_stat_fields_after_a_command_name_with_parentheses() {
        let stats = parse_stat(STAT, "cpu 1 2 3\nbtime 1700000000\n", 100, 4096).unwrap();
        assert_eq!(stats.cpu_seconds, 3.0);
        assert_eq!(stats.resident_bytes, 420.0 * 4096.0);
        assert_eq!(stats.virtual_bytes, 2_998_272.0);
        assert_eq!(stats.start_time_seconds, 1_700_000_000.0 + 352.9);
        assert!(parse_stat("15085 (x) R 1 2", "btime 1\n", 100, 4096).is_none());
        assert!(parse_stat(STAT, "cpu 1 2 3\n", 100, 4096).is_none());
    }

    #[test]
    fn reads_the_soft_limit_on_open_files() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
        assert_eq!(
            parse_max_fds(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
    }

    #[test]
    fn reads_clock_ticks_and_page_size_from_the_auxiliary_vector() {
        let mut auxv = Vec::new();
        for (k, v) in [(AT_PAGESZ, 16384u64), (AT_CLKTCK, 250), (0, 0)] {
            auxv.extend_from_slice(&(k as usize).to_ne_bytes());
            auxv.extend_from_slice(&(v as usize).to_ne_bytes());
        }
        assert_eq!(auxv_sizes(&auxv), (250, 16384));
        assert_eq!(auxv_sizes(&[]), (DEFAULT_CLOCK_TICKS, DEFAULT_PAGE_SIZE));
    }

    #[test]
    fn this_process_is_read() {
        let stats = ProcessStats::read().expect("/proc on Linux");
        assert!(stats.resident_bytes > 0.0 && stats.virtual_bytes >= stats.resident_bytes);
        assert!(stats.open_fds.is_some_and(|n| n >= 3.0), "{stats:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            stats.start_time_seconds <= now + 1.0
                && stats.start_time_seconds > now - 86400.0 * 365.0
        );
    }
}
