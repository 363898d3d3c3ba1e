//! Counters and the Prometheus text exposition format.
//!
//! The hot path only adds to its own thread's shard of atomics here (no lock, no allocation,
//! no cache line shared with another worker, and for a thread that owns its shard no locked
//! instruction either: see [`crate::live::Shard`]);
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

/// One answer in this many has its latency measured, per worker (the first, then every
/// this-many-th): two clock reads on every query cost more than the counting does.
pub const LATENCY_SAMPLE: u32 = 16;

/// Server-wide counters. One instance lives in `control::runtime::Runtime` for the life of
/// the process. What the query path counts is sharded: each thread adds to its own
/// cache-line-aligned shard (`live::shard`), and `/metrics` sums them, so no two workers
/// write one cache line.
#[derive(Debug, Default)]
pub struct Metrics {
    shards: [Shard; crate::live::SHARDS],
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    pub override_changes: AtomicU64,
    pub webhooks_ok: AtomicU64,
    pub webhooks_failed: AtomicU64,
}

/// What one thread counts of the queries it answers.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Shard {
    /// Answers by transport (UDP, TCP) and rcode.
    queries: [[AtomicU64; 8]; 2],
    truncated: [AtomicU64; 2],
    /// Messages not answered at all (no header, or a response).
    dropped: [AtomicU64; 2],
    latency: Histogram,
    /// UDP answers withheld, or sent truncated, by response rate limiting.
    rrl_dropped: AtomicU64,
    rrl_slipped: AtomicU64,
}

/// A fixed-bucket histogram on atomics.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Counts one observation, as the thread whose shard this histogram is (`by`).
    #[inline]
    fn observe(&self, by: crate::live::Shard, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BOUNDS.iter().position(|&b| secs <= b) {
            by.add(&self.buckets[i], 1);
        }
        by.add(&self.count, 1);
        by.add(&self.sum_nanos, d.as_nanos() as u64);
    }
}

/// Sums one counter over the shards.
fn sum<'a>(shards: impl Iterator<Item = &'a AtomicU64>) -> u64 {
    shards.map(|c| c.load(Ordering::Relaxed)).sum()
}

impl Metrics {
    /// This thread's shard, and the handle that adds to it.
    #[inline]
    fn mine(&self) -> (&Shard, crate::live::Shard) {
        let by = crate::live::shard();
        (&self.shards[by.index()], by)
    }

    /// Counts one query: its transport and outcome, and, when it was measured (one in
    /// [`LATENCY_SAMPLE`]), the time `resolve` took.
    #[inline]
    pub fn record(&self, transport: Transport, answer: Option<Answer>, elapsed: Option<Duration>) {
        let t = transport as usize;
        let (s, by) = self.mine();
        match answer {
            None => by.add(&s.dropped[t], 1),
            Some(a) => {
                let i = RCODES.iter().position(|(c, _)| *c == a.rcode).unwrap_or(RCODES.len() - 1);
                by.add(&s.queries[t][i], 1);
                if a.truncated {
                    by.add(&s.truncated[t], 1);
                }
                if let Some(d) = elapsed {
                    s.latency.observe(by, d);
                }
            }
        }
    }

    /// Counts a UDP answer withheld (`dropped`) or sent truncated by rate limiting.
    #[inline]
    pub fn rrl(&self, dropped: bool) {
        let (s, by) = self.mine();
        by.add(if dropped { &s.rrl_dropped } else { &s.rrl_slipped }, 1);
    }

    /// UDP answers rate limiting withheld and sent truncated, so far.
    pub fn rrl_counts(&self) -> (u64, u64) {
        let dropped = sum(self.shards.iter().map(|s| &s.rrl_dropped));
        (dropped, sum(self.shards.iter().map(|s| &s.rrl_slipped)))
    }

    /// The total answers sent, over every transport and rcode.
    pub fn answered(&self) -> u64 {
        sum(self.shards.iter().flat_map(|s| s.queries.iter().flatten()))
    }

    fn render_latency(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (i, b) in LATENCY_BOUNDS.iter().enumerate() {
            cumulative += sum(self.shards.iter().map(|s| &s.latency.buckets[i]));
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = sum(self.shards.iter().map(|s| &s.latency.count));
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let nanos = sum(self.shards.iter().map(|s| &s.latency.sum_nanos));
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {count}", nanos as f64 / 1e9);
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
                let v = sum(self.shards.iter().map(|s| &s.queries[t][i]));
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
            let v = sum(self.shards.iter().map(|s| &s.truncated[t]));
            let _ = writeln!(out, "meridian_dns_truncated_total{{transport=\"{transport}\"}} {v}");
        }
        header(
            out,
            "meridian_dns_dropped_total",
            "counter",
            "Messages not answered (no header, or not a query).",
        );
        for (t, transport) in ["udp", "tcp"].iter().enumerate() {
            let v = sum(self.shards.iter().map(|s| &s.dropped[t]));
            let _ = writeln!(out, "meridian_dns_dropped_total{{transport=\"{transport}\"}} {v}");
        }
        header(
            out,
            "meridian_dns_answer_duration_seconds",
            "histogram",
            "Time to compute an answer (decode, decide, encode), measured on one answer in 16 of each UDP worker and TCP connection (the first, the 17th, ...): its count is the answers measured, not all answers.",
        );
        self.render_latency(out, "meridian_dns_answer_duration_seconds");
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
        let (dropped, slipped) = self.rrl_counts();
        for (action, v) in [("dropped", dropped), ("slipped", slipped)] {
            let _ = writeln!(out, "meridian_rrl_responses_total{{action=\"{action}\"}} {v}");
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
