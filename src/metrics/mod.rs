//! Process-wide counters in Prometheus' text format.
//!
//! A fixed set of atomics, not a metrics framework: the server knows every
//! series it will ever report, so there is no registration, no labels built at
//! run time and no allocation on the hot path.
//!
//! - [`http`]: serves the text on `GET /metrics` (`oxport serve --metrics-listen`).

pub mod http;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Exporter types with their own series; anything else counts as "other".
const EXPORTERS: [&str; 4] = ["oci", "docker", "image", "other"];

/// How an export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Error,
    /// The client went away before the end.
    Cancelled,
}

const OUTCOMES: [(Outcome, &str); 3] = [
    (Outcome::Success, "success"),
    (Outcome::Error, "error"),
    (Outcome::Cancelled, "cancelled"),
];

/// Upper bounds (seconds) of the export duration histogram: from a small
/// archive of cached blobs to a multi-GiB push.
const BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

pub struct Metrics {
    exports: [[AtomicU64; 3]; 4],
    /// Per bucket (not cumulative); the last slot is +Inf.
    duration_buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_sum_micros: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    blobs_deduplicated: AtomicU64,
    registry_retries: AtomicU64,
    requests_in_flight: AtomicI64,
    exports_in_flight: AtomicI64,
}

static GLOBAL: Metrics = Metrics::new();

/// The process's counters.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// Decrements its gauge when dropped, however the work ends.
pub struct InFlight(&'static AtomicI64);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const ZERO3: [AtomicU64; 3] = [ZERO; 3];

impl Metrics {
    const fn new() -> Self {
        Metrics {
            exports: [ZERO3; 4],
            duration_buckets: [ZERO; BUCKETS.len() + 1],
            duration_sum_micros: ZERO,
            bytes_in: ZERO,
            bytes_out: ZERO,
            blobs_deduplicated: ZERO,
            registry_retries: ZERO,
            requests_in_flight: AtomicI64::new(0),
            exports_in_flight: AtomicI64::new(0),
        }
    }

    /// A gRPC request began; it counts until its response stream ends.
    pub fn request_started(&'static self) -> InFlight {
        self.requests_in_flight.fetch_add(1, Relaxed);
        InFlight(&self.requests_in_flight)
    }

    /// An export began running (it holds an export slot).
    pub fn export_started(&'static self) -> InFlight {
        self.exports_in_flight.fetch_add(1, Relaxed);
        InFlight(&self.exports_in_flight)
    }

    pub fn export_finished(&self, exporter: &str, outcome: Outcome, took: Duration) {
        let e = EXPORTERS[..3]
            .iter()
            .position(|x| *x == exporter)
            .unwrap_or(3);
        let o = OUTCOMES
            .iter()
            .position(|(x, _)| *x == outcome)
            .unwrap_or(1);
        self.exports[e][o].fetch_add(1, Relaxed);
        let secs = took.as_secs_f64();
        let b = BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS.len());
        self.duration_buckets[b].fetch_add(1, Relaxed);
        self.duration_sum_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// Blob bytes received from clients.
    pub fn add_bytes_in(&self, n: u64) {
        self.bytes_in.fetch_add(n, Relaxed);
    }

    /// Export output bytes sent to clients.
    pub fn add_bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Relaxed);
    }

    /// Blobs a client did not have to upload because the store had them.
    pub fn add_deduplicated(&self, n: u64) {
        self.blobs_deduplicated.fetch_add(n, Relaxed);
    }

    pub fn registry_retry(&self) {
        self.registry_retries.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let get = |a: &AtomicU64| a.load(Relaxed);

        header(&mut s, "oxport_build_info", "gauge", "The running version.");
        let _ = writeln!(
            s,
            "oxport_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );

        header(
            &mut s,
            "oxport_exports_total",
            "counter",
            "Exports that ended, by exporter type and outcome.",
        );
        for (e, name) in EXPORTERS.iter().enumerate() {
            for (o, (_, outcome)) in OUTCOMES.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "oxport_exports_total{{exporter=\"{name}\",outcome=\"{outcome}\"}} {}",
                    get(&self.exports[e][o])
                );
            }
        }

        header(
            &mut s,
            "oxport_export_duration_seconds",
            "histogram",
            "Time from the start of an export to its end.",
        );
        let mut cumulative = 0;
        for (i, le) in BUCKETS.iter().enumerate() {
            cumulative += get(&self.duration_buckets[i]);
            let _ = writeln!(
                s,
                "oxport_export_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += get(&self.duration_buckets[BUCKETS.len()]);
        let _ = writeln!(
            s,
            "oxport_export_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let sum = get(&self.duration_sum_micros) as f64 / 1e6;
        let _ = writeln!(s, "oxport_export_duration_seconds_sum {sum}");
        let _ = writeln!(s, "oxport_export_duration_seconds_count {cumulative}");

        let counters = [
            (
                "oxport_blob_bytes_received_total",
                "Blob bytes uploaded by clients.",
                &self.bytes_in,
            ),
            (
                "oxport_export_bytes_sent_total",
                "Export output bytes streamed to clients.",
                &self.bytes_out,
            ),
            (
                "oxport_blobs_deduplicated_total",
                "Blobs clients did not upload because the content store had them.",
                &self.blobs_deduplicated,
            ),
            (
                "oxport_registry_retries_total",
                "Registry requests retried after a connection error, 5xx or 429.",
                &self.registry_retries,
            ),
        ];
        for (name, help, value) in counters {
            header(&mut s, name, "counter", help);
            let _ = writeln!(s, "{name} {}", get(value));
        }

        let gauges = [
            (
                "oxport_requests_in_flight",
                "gRPC requests being handled, streams included.",
                &self.requests_in_flight,
            ),
            (
                "oxport_exports_in_flight",
                "Exports running now.",
                &self.exports_in_flight,
            ),
        ];
        for (name, help, value) in gauges {
            header(&mut s, name, "gauge", help);
            let _ = writeln!(s, "{name} {}", value.load(Relaxed));
        }
        s
    }
}

fn header(s: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(s, "# HELP {name} {help}");
    let _ = writeln!(s, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of one sample line, by its full series name.
    fn sample(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no series {series}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn histogram_is_cumulative_and_counters_render() {
        let m: &'static Metrics = Box::leak(Box::new(Metrics::new()));
        m.export_finished("oci", Outcome::Success, Duration::from_millis(70));
        m.export_finished("oci", Outcome::Success, Duration::from_secs(400));
        m.export_finished("tarball", Outcome::Error, Duration::from_millis(1));
        m.add_bytes_out(10);
        let g = m.export_started();
        let text = m.render();
        assert_eq!(
            sample(
                &text,
                "oxport_exports_total{exporter=\"oci\",outcome=\"success\"}"
            ),
            2.0
        );
        assert_eq!(
            sample(
                &text,
                "oxport_exports_total{exporter=\"other\",outcome=\"error\"}"
            ),
            1.0
        );
        assert_eq!(
            sample(&text, "oxport_export_duration_seconds_bucket{le=\"0.05\"}"),
            1.0
        );
        assert_eq!(
            sample(&text, "oxport_export_duration_seconds_bucket{le=\"0.1\"}"),
            2.0
        );
        assert_eq!(
            sample(&text, "oxport_export_duration_seconds_bucket{le=\"300\"}"),
            2.0
        );
        assert_eq!(
            sample(&text, "oxport_export_duration_seconds_bucket{le=\"+Inf\"}"),
            3.0
        );
        assert_eq!(sample(&text, "oxport_export_duration_seconds_count"), 3.0);
        assert_eq!(sample(&text, "oxport_export_bytes_sent_total"), 10.0);
        assert_eq!(sample(&text, "oxport_exports_in_flight"), 1.0);
        drop(g);
        assert_eq!(sample(&m.render(), "oxport_exports_in_flight"), 0.0);
        // Every sample line belongs to a declared family.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "undeclared {name}"
            );
        }
    }
}
