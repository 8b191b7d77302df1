//! Measuring and printing: sizes from the environment, latency percentiles, rates, tables,
//! and the machine's load, which every figure must be read against. Shared by the
//! orchestrator's and the runner's bench binaries (the runner includes this file), so each
//! uses only some of it.

#![allow(dead_code)]

use std::time::Duration;

/// A size from the environment variable `name`, or `default`.
pub fn size(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value.trim().parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

/// Whether the scenario `name` should run: every one, unless bench arguments (after `--`)
/// or `RIVET_BENCH_ONLY` (comma-separated) name some.
pub fn selected(name: &str) -> bool {
    let mut wanted: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with('-')).collect();
    if let Ok(only) = std::env::var("RIVET_BENCH_ONLY") {
        wanted.extend(only.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()));
    }
    wanted.is_empty() || wanted.iter().any(|w| name.contains(w.as_str()))
}

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples`.
    pub fn of(samples: &[Duration]) -> Percentiles {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.to_vec();
        sorted.sort();
        let rank = |p: f64| sorted[((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        let total: Duration = sorted.iter().sum();
        Percentiles {
            count: sorted.len(),
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: sorted[sorted.len() - 1],
            mean: total / sorted.len() as u32,
        }
    }

    /// The table cells: count, p50, p90, p99, max, mean.
    pub fn cells(&self) -> Vec<String> {
        let mut cells = vec![self.count.to_string()];
        cells.extend([self.p50, self.p90, self.p99, self.max, self.mean].map(millis));
        cells
    }
}

/// The median, minimum and maximum of `samples`.
pub fn spread(samples: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let mid = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) { (sorted[mid - 1] + sorted[mid]) / 2 } else { sorted[mid] };
    (median, sorted[0], sorted[sorted.len() - 1])
}

/// A duration in milliseconds, with a precision that suits its size.
pub fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1_000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// `count` things over `elapsed`, per second, with thousands separated.
pub fn rate(count: f64, elapsed: Duration) -> String {
    thousands(count / elapsed.as_secs_f64())
}

/// A number rounded and grouped by thousands: 12_345.6 → "12,346".
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints a table with a title, a header row and right-aligned cells (but the first).
pub fn table(title: &str, headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, width))| if i == 0 { format!("{cell:<width$}") } else { format!("{cell:>width$}") })
            .collect();
        println!("  {}", padded.join("  "));
    };
    println!("\n{title}");
    line(headers.iter().map(|h| h.to_string()).collect());
    println!("  {}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    for row in rows {
        line(row.clone());
    }
}

/// The machine's load: CPUs and the load averages, to read every figure against.
pub fn load_context() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let averages: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPUs, load average {} (1, 5, 15 min)", averages.join(" "))
}
