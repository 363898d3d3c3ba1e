//! Counters and the Prometheus text exposition format.
//!
//! The hot path only does relaxed `fetch_add`s on atomics here (no lock, no allocation);
//! rendering happens on `/metrics` requests. Metric names follow Prometheus conventions:
//! `meridian_` prefix, `_total` for counters, base units (seconds).

use crate::dns::resolve::{Answer, Transport, rcode};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The rcodes counted separately; anything else is `OTHER`.
const RCODES: [(u16, &str); 8] = [
    (rcode::NOERROR, "NOERROR"),
    (rcode::FORMERR, "FORMERR"),
    (rcode::SERVFAIL, "SERVFAIL"),
    (rcode::NXDOMAIN, "NXDOMAIN"),
    (rcode::NOTIMP, "NOTIMP"),
    (rcode::REFUSED, "REFUSED"),
    (rcode::BADVERS, "BADVERS"),
    (u16::MAX, "OTHER"),
];

/// Upper bounds of the answer latency histogram, in seconds.
const LATENCY_BOUNDS: [f64; 10] =
    [0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01];

/// Server-wide counters. One instance lives in `state::Live` for the life of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Answers by transport (UDP, TCP) and rcode.
    queries: [[AtomicU64; 8]; 2],
    truncated: [AtomicU64; 2],
    /// Messages not answered at all (no header, or a response).
    dropped: [AtomicU64; 2],
    latency: Histogram,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    pub override_changes: AtomicU64,
    pub webhooks_ok: AtomicU64,
    pub webhooks_failed: AtomicU64,
    /// UDP answers withheld, or sent truncated, by response rate limiting.
    pub rrl_dropped: AtomicU64,
    pub rrl_slipped: AtomicU64,
}

/// A fixed-bucket histogram on atomics.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    #[inline]
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BOUNDS.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

impl Metrics {
    /// Counts one query: its transport, outcome and the time `resolve` took.
    #[inline]
    pub fn record(&self, transport: Transport, answer: Option<Answer>, elapsed: Duration) {
        let t = transport as usize;
        match answer {
            None => {
                self.dropped[t].fetch_add(1, Ordering::Relaxed);
            }
            Some(a) => {
                let i = RCODES.iter().position(|(c, _)| *c == a.rcode).unwrap_or(RCODES.len() - 1);
                self.queries[t][i].fetch_add(1, Ordering::Relaxed);
                if a.truncated {
                    self.truncated[t].fetch_add(1, Ordering::Relaxed);
                }
                self.latency.observe(elapsed);
            }
        }
    }

    /// The total answers sent, over every transport and rcode.
    pub fn answered(&self) -> u64 {
        self.queries.iter().flatten().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Writes the DNS and reload metrics.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "meridian_dns_queries_total",
            "counter",
            "DNS queries answered, by transport and rcode.",
        );
        for (t, transport) in ["udp", "tcp"].iter().enumerate() {
            for (i, (_, name)) in RCODES.iter().enumerate() {
                let v = self.queries[t][i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "meridian_dns_queries_total{{transport=\"{transport}\",rcode=\"{name}\"}} {v}"
                );
            }
        }
        // Each family's samples together, after its own HELP and TYPE (strict parsers, and
        // OpenMetrics, refuse interleaved families).
        header(
            out,
            "meridian_dns_truncated_total",
            "counter",
            "UDP answers sent truncated (TC=1).",
        );
        for (t, transport) in ["udp", "tcp"].iter().enumerate() {
            let v = self.truncated[t].load(Ordering::Relaxed);
            let _ = writeln!(out, "meridian_dns_truncated_total{{transport=\"{transport}\"}} {v}");
        }
        header(
            out,
            "meridian_dns_dropped_total",
            "counter",
            "Messages not answered (no header, or not a query).",
        );
        for (t, transport) in ["udp", "tcp"].iter().enumerate() {
            let v = self.dropped[t].load(Ordering::Relaxed);
            let _ = writeln!(out, "meridian_dns_dropped_total{{transport=\"{transport}\"}} {v}");
        }
        header(
            out,
            "meridian_dns_answer_duration_seconds",
            "histogram",
            "Time to compute an answer (decode, decide, encode).",
        );
        self.latency.render(out, "meridian_dns_answer_duration_seconds");
        header(out, "meridian_reloads_total", "counter", "Configuration reloads applied.");
        let _ = writeln!(out, "meridian_reloads_total {}", self.reloads.load(Ordering::Relaxed));
        header(
            out,
            "meridian_reload_failures_total",
            "counter",
            "Reloads rejected; the previous configuration kept serving.",
        );
        let _ = writeln!(
            out,
            "meridian_reload_failures_total {}",
            self.reload_failures.load(Ordering::Relaxed)
        );
        header(
            out,
            "meridian_admin_override_changes_total",
            "counter",
            "Endpoint overrides set, cleared or expired.",
        );
        let _ = writeln!(
            out,
            "meridian_admin_override_changes_total {}",
            self.override_changes.load(Ordering::Relaxed)
        );
        header(out, "meridian_webhooks_total", "counter", "Burst webhooks, by final result.");
        for (result, v) in [("delivered", &self.webhooks_ok), ("failed", &self.webhooks_failed)] {
            let _ = writeln!(
                out,
                "meridian_webhooks_total{{result=\"{result}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "meridian_rrl_responses_total",
            "counter",
            "UDP answers rate-limited, by action.",
        );
        for (action, v) in [("dropped", &self.rrl_dropped), ("slipped", &self.rrl_slipped)] {
            let _ = writeln!(
                out,
                "meridian_rrl_responses_total{{action=\"{action}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// `# HELP` and `# TYPE` lines.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value escaped per the exposition format (backslash, quote, newline).
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
