//! Figures and checks: latency percentiles, the markdown table every scenario prints, and the
//! counts it promises (a violated count makes the process exit non-zero; timings never do).

use std::fmt::Write as _;
use std::time::Duration;

/// Latencies of one kind of request.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u64>,
}

impl Latencies {
    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        self.micros
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds another set.
    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    /// How many took longer than `d`.
    #[must_use]
    pub fn count_over(&self, d: Duration) -> usize {
        let limit = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.micros.iter().filter(|m| **m > limit).count()
    }

    /// How many were recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// Whether none were recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// The quantile at `permille` (500 = median, 990 = p99), nearest rank.
    #[must_use]
    pub fn quantile(&mut self, permille: usize) -> Duration {
        if self.micros.is_empty() {
            return Duration::ZERO;
        }
        self.micros.sort_unstable();
        let last = self.micros.len() - 1;
        let index = ((permille.min(1000) * last + 500) / 1000).min(last);
        Duration::from_micros(self.micros[index])
    }

    /// "p50 X / p99 Y" for a table cell.
    #[must_use]
    pub fn summary(&mut self) -> String {
        format!(
            "p50 {} / p99 {}",
            ms(self.quantile(500)),
            ms(self.quantile(990))
        )
    }
}

/// A duration in milliseconds with sensible precision.
#[must_use]
pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 1000.0 {
        format!("{v:.1} ms")
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// A rate with thousands separators.
#[must_use]
pub fn rate(count: u64, over: Duration) -> String {
    let secs = over.as_secs_f64();
    if secs <= 0.0 {
        return "n/a".into();
    }
    let per_sec = count as f64 / secs;
    if per_sec >= 100.0 {
        format!("{}/s", group(&format!("{per_sec:.0}")))
    } else {
        format!("{per_sec:.1}/s")
    }
}

/// `12345` → `12,345`.
#[must_use]
pub fn thousands(n: u64) -> String {
    group(&n.to_string())
}

fn group(digits: &str) -> String {
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One count a scenario promises.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is counted.
    pub name: String,
    /// Measured.
    pub actual: u64,
    /// Promised.
    pub expected: u64,
}

/// A scenario's result: figures (printed), checks (printed and asserted).
#[derive(Debug, Default)]
pub struct Report {
    /// Scenario name and setting, e.g. `fleet — 3 instances, PostgreSQL`.
    pub title: String,
    /// Rows of the figures table.
    pub rows: Vec<(String, String)>,
    /// Counts that must match.
    pub checks: Vec<Check>,
    /// Free-form notes printed under the table.
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report titled `title`.
    #[must_use]
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            ..Self::default()
        }
    }

    /// Adds a figure.
    pub fn row(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.rows.push((name.into(), value.into()));
    }

    /// Adds a promised count (shown as a row too).
    pub fn check(&mut self, name: impl Into<String>, actual: u64, expected: u64) {
        self.checks.push(Check {
            name: name.into(),
            actual,
            expected,
        });
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The checks that failed.
    #[must_use]
    pub fn violations(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.actual != c.expected)
            .collect()
    }

    /// The report as markdown.
    #[must_use]
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n", self.title);
        let _ = writeln!(out, "| figure | value |\n|---|---|");
        for (name, value) in &self.rows {
            let _ = writeln!(out, "| {name} | {value} |");
        }
        for c in &self.checks {
            let verdict = if c.actual == c.expected {
                "ok".to_owned()
            } else {
                format!("**VIOLATED** (expected {})", thousands(c.expected))
            };
            let _ = writeln!(
                out,
                "| {} | **{}** {verdict} |",
                c.name,
                thousands(c.actual)
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "\n{note}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.quantile(0), Duration::from_millis(1));
        assert_eq!(l.quantile(500), Duration::from_millis(51));
        assert_eq!(l.quantile(990), Duration::from_millis(99));
        assert_eq!(l.quantile(1000), Duration::from_millis(100));
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn a_wrong_count_is_a_violation() {
        let mut r = Report::new("t");
        r.check("duplicates", 0, 0);
        r.check("lost", 2, 0);
        assert_eq!(r.violations().len(), 1);
        assert!(r.markdown().contains("**VIOLATED** (expected 0)"));
    }
}
