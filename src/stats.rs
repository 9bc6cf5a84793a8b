//! Latency samples per pipeline stage, summarised as p50 / p95 / max.

use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// CPU time of the calling thread (profiles on a shared machine; with 1 thread all work runs
/// on it). Linux only; elsewhere wall time.
pub fn thread_cpu_seconds() -> f64 {
    #[cfg(target_os = "linux")]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        extern "C" {
            fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut t = Timespec { sec: 0, nsec: 0 };
        // SAFETY: clock_gettime only writes the struct it is given.
        unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.sec as f64 + t.nsec as f64 * 1e-9
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
    }
}

/// Resident memory of this process in bytes (Linux: VmRSS of /proc/self/status); `None`
/// elsewhere or when unreadable.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub total_s: f64,
}

/// Nearest-rank percentile of sorted values (`q` in 0..=1).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn summarise(samples_ms: &[f64]) -> Summary {
    let mut s = samples_ms.to_vec();
    s.sort_by(f64::total_cmp);
    let total: f64 = s.iter().sum();
    Summary {
        count: s.len(),
        p50_ms: percentile(&s, 0.5),
        p95_ms: percentile(&s, 0.95),
        max_ms: s.last().copied().unwrap_or(0.0),
        mean_ms: if s.is_empty() { 0.0 } else { total / s.len() as f64 },
        total_s: total / 1000.0,
    }
}

/// Samples per named stage, kept in insertion-independent (sorted) order for reports.
#[derive(Debug, Default, Clone)]
pub struct StageLog {
    stages: BTreeMap<&'static str, Vec<f64>>,
}

impl StageLog {
    pub fn record(&mut self, stage: &'static str, d: Duration) {
        self.stages.entry(stage).or_default().push(d.as_secs_f64() * 1000.0);
    }

    pub fn merge(&mut self, other: StageLog) {
        for (k, v) in other.stages {
            self.stages.entry(k).or_default().extend(v);
        }
    }

    pub fn total_s(&self, stage: &str) -> f64 {
        self.stages.get(stage).map_or(0.0, |v| v.iter().sum::<f64>() / 1000.0)
    }

    pub fn summaries(&self) -> BTreeMap<&'static str, Summary> {
        self.stages.iter().map(|(k, v)| (*k, summarise(v))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(|i| i as f64).collect();
        let s = summarise(&v);
        assert_eq!((s.p50_ms, s.p95_ms, s.max_ms, s.count), (50.0, 95.0, 100.0, 100));
        assert_eq!(summarise(&[]).p50_ms, 0.0);
        assert_eq!(summarise(&[7.0]).p95_ms, 7.0);
    }
}
