//! Endpoint load: sources, smoothing and staleness.
//!
//! A polled source (`http`, `prometheus`) has one task per endpoint; `push` values arrive
//! through the admin API. Every sample goes through [`record`]: smoothed by an EWMA with a
//! half-life, turned into utilisation by the endpoint's capacity, and stamped, so that a value
//! older than `stale_after` reads as *unknown*, never as zero. Sources that fail are logged on
//! transition (failing / recovered) and counted; nothing here touches the query path.

use crate::config::{LoadConfig, LoadSource};
use crate::control::runtime::Runtime;
use crate::control::supervise::Bound;
use crate::live::{EndpointKey, EndpointLive, ProfileLive};
use crate::state::{Shared, Snapshot};
use crate::traffic::policy::ProfileBurst;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tracing::{info, warn};

/// A sample above this many times the endpoint's capacity is refused: no real endpoint runs
/// at 100× what it can take, so such a value is a unit mistake or a broken exporter, and
/// taking it would pin a burst on for hours while the smoothed value decays.
pub const MAX_TIMES_CAPACITY: f64 = 100.0;

pub use crate::traffic::burst::ewma;

/// The clock of load samples and burst ticks: the runtime's, so that a test in paused tokio
/// time runs the real tasks in virtual time; outside a runtime, the system's monotonic clock.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Why a sample was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejected {
    #[error("the value {0} is not a finite number")]
    NotFinite(f64),
    #[error("the value {0} is negative; load is a count or a rate, never below 0")]
    Negative(f64),
    #[error("the value {value} is more than {MAX_TIMES_CAPACITY}× the capacity {capacity}")]
    TooLarge { value: f64, capacity: f64 },
}

/// The one check every sample passes, whatever its source (push, JSON pointer, Prometheus
/// text, PromQL): finite, not negative, at most [`MAX_TIMES_CAPACITY`] × capacity.
pub fn validate(raw: f64, capacity: f64) -> Result<f64, Rejected> {
    if !raw.is_finite() {
        Err(Rejected::NotFinite(raw))
    } else if raw < 0.0 {
        Err(Rejected::Negative(raw))
    } else if raw > capacity * MAX_TIMES_CAPACITY {
        Err(Rejected::TooLarge { value: raw, capacity })
    } else {
        Ok(raw)
    }
}

/// Records one raw sample for endpoint `key`: validated, then smoothed. A refused sample is
/// counted, logged on the transition to refusing, and leaves the smoothed value untouched.
/// After a silence longer than `stale_after` the average starts again from this sample, so an
/// old spike can never pin a state.
pub fn record(
    live: &EndpointLive,
    key: &EndpointKey,
    cfg: &LoadConfig,
    raw: f64,
) -> Result<(), Rejected> {
    record_at(live, key, cfg, raw, now())
}

/// [`record`] at a given time (`meridian simulate` runs in virtual time).
pub fn record_at(
    live: &EndpointLive,
    key: &EndpointKey,
    cfg: &LoadConfig,
    raw: f64,
    now: Instant,
) -> Result<(), Rejected> {
    let mut d = live.detail();
    let l = &mut d.load;
    let raw = match validate(raw, cfg.capacity) {
        Ok(v) => v,
        Err(e) => {
            l.rejected += 1;
            if !l.failing {
                l.failing = true;
                warn!(endpoint = %key, error = %e, "load sample rejected; the last good value stands until it is stale");
            }
            l.error = Some(e.to_string());
            return Err(e);
        }
    };
    let prev =
        l.smoothed.zip(l.sampled_at).filter(|(_, at)| now.duration_since(*at) <= cfg.stale_after);
    l.smoothed = Some(ewma(prev, raw, now, cfg.half_life));
    l.raw = Some(raw);
    l.sampled_at = Some(now);
    l.updated = Some(SystemTime::now());
    l.samples += 1;
    if l.failing {
        l.failing = false;
        l.error = None;
        info!(endpoint = %key, "load source recovered");
    }
    Ok(())
}

fn record_failure(live: &EndpointLive, key: &EndpointKey, error: String) {
    let mut d = live.detail();
    let l = &mut d.load;
    l.failures += 1;
    if !l.failing {
        l.failing = true;
        warn!(endpoint = %key, %error, "load source failing; its value will read as unknown once stale");
    }
    l.error = Some(error);
}

/// An endpoint's smoothed load while fresh at `now`, else `None`.
pub fn fresh_load(live: &EndpointLive, cfg: &LoadConfig, now: Instant) -> Option<f64> {
    live.detail().load.fresh(cfg.stale_after, now)
}

/// One load task per polled source of the current snapshot, re-planned after every reload.
pub async fn supervise(
    shared: Arc<Shared>,
    reloaded: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) {
    let plan = |snap: &Snapshot| {
        let mut want = HashMap::new();
        for (id, e) in snap.policies.endpoints.iter().enumerate() {
            if let Some(cfg) = &e.load {
                let live = snap.signals.endpoint(id as u32).clone();
                want.insert(e.key.clone(), Bound { spec: cfg.clone(), live });
            }
        }
        want
    };
    // Push sources have no task: their values arrive through the admin API.
    let start = |key: &EndpointKey, b: &Bound<LoadConfig, EndpointLive>| {
        (b.spec.source != LoadSource::Push)
            .then(|| tokio::spawn(poll(key.clone(), b.spec.clone(), b.live.clone())))
    };
    crate::control::supervise::supervise(shared, reloaded, stop, plan, start).await;
}

async fn poll(key: EndpointKey, cfg: LoadConfig, live: Arc<EndpointLive>) {
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A poll must finish well within its interval (and never past 10 s).
    let limit = (cfg.interval * 9 / 10).min(Duration::from_secs(10));
    loop {
        tick.tick().await;
        let value =
            match tokio::time::timeout(limit, fetch_value_with(&cfg.source, &cfg.client)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {limit:?}")),
            };
        match value {
            // A refused value is counted and logged inside `record`.
            Ok(v) => _ = record(&live, &key, &cfg, v),
            Err(e) => record_failure(&live, &key, e),
        }
    }
}

/// Reads one value from a polled source.
pub async fn fetch_value(source: &LoadSource) -> Result<f64, String> {
    fetch_value_with(source, &crate::config::ClientConfig::default()).await
}

/// [`fetch_value`] calling the source's URL as `client` says (TLS, credentials, headers).
pub async fn fetch_value_with(
    source: &LoadSource,
    client: &crate::config::ClientConfig,
) -> Result<f64, String> {
    match source {
        LoadSource::Push => Err("push sources are not polled".into()),
        LoadSource::Http { url, json_pointer, metric, labels } => {
            let body = get(url, client).await?;
            match (json_pointer, metric) {
                (Some(p), _) => {
                    let v: serde_json::Value =
                        serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}"))?;
                    let x = v.pointer(p).ok_or_else(|| format!("no value at JSON pointer {p}"))?;
                    x.as_f64()
                        .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
                        .ok_or_else(|| format!("the value at {p} is not a number"))
                }
                (None, Some(m)) => prometheus_text(&body, m, labels),
                (None, None) => Err("no json_pointer or metric".into()),
            }
        }
        LoadSource::Prometheus { url, query } => {
            let result = prometheus_api(url, client, "query", &[("query", query.clone())]).await?;
            match result.as_slice() {
                [one] => one["value"][1]
                    .as_str()
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| "the query's value is not a number".to_string()),
                [] => Err("the query returned no series".into()),
                many => {
                    Err(format!("the query returned {} series; it must return one", many.len()))
                }
            }
        }
    }
}

/// One sample of the Prometheus text exposition format: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses one sample line (not a comment, not blank). Label values are quoted strings with
/// the format's escapes (`\\`, `\"`, `\n`), so a value may hold commas, braces and quotes; a
/// timestamp after the value is allowed and ignored; `NaN`, `+Inf` and `-Inf` are numbers.
pub fn parse_sample(line: &str) -> Result<Sample, String> {
    let line = line.trim();
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
    let name = &line[..name_end];
    let valid_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    if !valid_name(name) {
        return Err(format!("{name:?} is not a metric name"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            // Skip spaces and separating commas.
            while chars.peek().is_some_and(|(_, c)| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            match chars.peek() {
                Some((i, '}')) => {
                    rest = &after[i + 1..];
                    break;
                }
                None => return Err("unterminated label set".into()),
                _ => {}
            }
            let start = chars.peek().map(|(i, _)| *i).unwrap_or(0);
            let mut end = start;
            while let Some((i, c)) = chars.peek().copied() {
                if c == '=' || c.is_whitespace() {
                    break;
                }
                end = i + c.len_utf8();
                chars.next();
            }
            let key = &after[start..end];
            if !valid_name(key) || key.contains(':') {
                return Err(format!("{key:?} is not a label name"));
            }
            while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('=')
                || chars.next().map(|(_, c)| c) != Some('"')
            {
                return Err(format!("label {key} needs =\"value\""));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c @ ('\\' | '"'))) => value.push(c),
                        Some((_, c)) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err("unterminated label value".into()),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            labels.push((key.to_string(), value));
        }
    }
    let mut parts = rest.split_whitespace();
    let value = parts.next().ok_or("no value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse::<f64>().map_err(|_| format!("the value {v:?} is not a number"))?,
    };
    if let Some(ts) = parts.next()
        && ts.parse::<i64>().is_err()
    {
        return Err(format!("the timestamp {ts:?} is not a whole number of milliseconds"));
    }
    Ok(Sample { name: name.to_string(), labels, value })
}

/// The one sample of `metric` carrying every label of `labels`, from a Prometheus text
/// exposition (`# HELP`, `# TYPE` and other comments skipped; typed or untyped samples).
pub fn prometheus_text(
    body: &str,
    metric: &str,
    labels: &[(String, String)],
) -> Result<f64, String> {
    let mut found = Vec::new();
    for (n, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Only lines of the metric wanted are parsed: a malformed line elsewhere is not ours.
        let name = line.split(|c: char| c == '{' || c.is_whitespace()).next().unwrap_or("");
        if name != metric {
            continue;
        }
        let s = parse_sample(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if labels.iter().all(|l| s.labels.contains(l)) {
            found.push(s.value);
        }
    }
    match found.as_slice() {
        [v] => Ok(*v),
        [] => Err(format!("no series {metric} with the given labels")),
        more => Err(format!("{} series match {metric}; add labels to pick one", more.len())),
    }
}

/// One call of a Prometheus server's HTTP API (`api`: `query` or `query_range`, with its
/// parameters): the series of a successful answer, or why there are none. Load sources, the
/// fleet's range queries and the health consensus all read Prometheus through this.
pub async fn prometheus_api(
    base: &str,
    client: &crate::config::ClientConfig,
    api: &str,
    params: &[(&str, String)],
) -> Result<Vec<serde_json::Value>, String> {
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
    let url = format!("{}/api/v1/{api}?{}", base.trim_end_matches('/'), query.join("&"));
    let body = get(&url, client).await?;
    let mut v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!("query failed: {}", v["error"].as_str().unwrap_or("unknown error")));
    }
    match v["data"]["result"].take() {
        serde_json::Value::Array(series) => Ok(series),
        _ => Err("no result in the answer".into()),
    }
}

/// A PromQL query as a URL query value (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    utf8_percent_encode(s, QUERY).to_string()
}

/// A GET of an `http(s)://` URL, as `client` says; the body, for a 2xx answer.
pub async fn get(url: &str, client: &crate::config::ClientConfig) -> Result<String, String> {
    let u = crate::control::http::parse_url(url)?;
    let headers = [("User-Agent", "Meridian-Load/1.0"), ("Accept", "*/*")];
    let (code, body) = crate::control::http::call(&u, client, "GET", &headers, None).await?;
    if !(200..300).contains(&code) {
        return Err(format!("HTTP status {code}"));
    }
    String::from_utf8(body).map_err(|_| "the body is not UTF-8".into())
}

/// What one tick of a burst rule did.
#[derive(Debug, Clone)]
pub struct Tick {
    pub step: crate::traffic::burst::Step,
    pub inputs: crate::traffic::burst::Inputs,
    /// The webhook to fire and its JSON body, when the step had an event.
    pub hook: Option<(Option<crate::config::Hook>, String)>,
}

/// The inputs of profile `pid`'s burst rule at `now`, from the live state: the primary group's
/// utilisation (its fresh loads over their capacities), the overflow's load when every
/// overflow endpoint has a fresh one, availability, and the answer counters.
pub fn burst_inputs(
    snap: &Snapshot,
    b: &ProfileBurst,
    now: Instant,
) -> crate::traffic::burst::Inputs {
    use crate::traffic::policy::available;
    let (p, sig) = (&snap.policies, &snap.signals);
    let (mut load, mut capacity, mut total_capacity) = (0.0, 0.0, 0.0);
    for &id in b.primary.iter() {
        let Some(cfg) = p.endpoints[id as usize].load.as_ref() else { continue };
        total_capacity += cfg.capacity;
        if let Some(v) = fresh_load(sig.endpoint(id), cfg, now) {
            load += v;
            capacity += cfg.capacity;
        }
    }
    let utilisation = (capacity > 0.0).then(|| load / capacity);
    let overflow: Option<f64> = b
        .overflow
        .iter()
        .map(|&id| {
            let cfg = p.endpoints[id as usize].load.as_ref()?;
            fresh_load(sig.endpoint(id), cfg, now)
        })
        .sum();
    let answers = |ids: &[u32]| ids.iter().map(|&id| sig.endpoint(id).answers()).sum::<u64>();
    crate::traffic::burst::Inputs {
        utilisation,
        overflow_demand: overflow.filter(|_| total_capacity > 0.0).map(|o| o / total_capacity),
        primary_down: !b.primary.iter().any(|&id| available(p, id, sig, 0)),
        overflow_online: b.overflow.iter().any(|&id| available(p, id, sig, 0)),
        answers: (answers(&b.primary), answers(&b.overflow)),
    }
}

/// One tick of profile `name`'s burst rule at `now`: read the live state, step the
/// lifecycle, publish it (signals and detail, under the detail's lock so `/v1/status` shows
/// the lifecycle the answers follow). The server's burst task and `meridian simulate` both
/// run exactly this; `None` when the profile or its rule is gone.
pub fn burst_tick(name: &crate::dns::name::Name, snap: &Snapshot, now: Instant) -> Option<Tick> {
    let pid = snap.policies.profile_id(name)?;
    let b = snap.policies.profiles[pid as usize].burst.as_ref()?;
    let inputs = burst_inputs(snap, b, now);
    publish(name, snap, pid, |d| {
        let step = d.machine.step(now, inputs, &b.rule);
        d.utilisation = inputs.utilisation;
        (step, inputs)
    })
}

/// Publishes what `decide` makes of profile `pid`'s lifecycle: the signals `select` reads and
/// the detail `/v1/status` shows, changed together under the detail's lock; the webhook the
/// step's event calls for.
pub(crate) fn publish(
    name: &crate::dns::name::Name,
    snap: &Snapshot,
    pid: u32,
    decide: impl FnOnce(
        &mut crate::live::BurstDetail,
    ) -> (crate::traffic::burst::Step, crate::traffic::burst::Inputs),
) -> Option<Tick> {
    use crate::live::BurstDetail;
    use crate::traffic::burst::{Event, Machine};
    let p = &snap.policies;
    let b = p.profiles[pid as usize].burst.as_ref()?;
    let profile = snap.signals.profile(pid);
    let mut detail = profile.burst();
    let d = detail.get_or_insert_with(|| BurstDetail {
        machine: Machine::new(),
        utilisation: None,
        last_transition: None,
        transitions: 0,
        webhooks_ok: 0,
        webhooks_failed: 0,
        fleet: None,
    });
    let (step, inputs) = decide(d);
    let machine = &d.machine;
    if step.transition.is_some() {
        d.last_transition = Some(SystemTime::now());
        d.transitions += 1;
    }
    profile.set_burst(machine.state, machine.share);
    let hook = step.event.map(|event| {
        let names = |ids: &[u32]| {
            ids.iter().map(|&i| p.endpoints[i as usize].name.clone()).collect::<Vec<_>>()
        };
        let body = serde_json::json!({
            "event": match event { Event::Warm => "warm", Event::Idle => "idle" },
            "profile": name.to_string(),
            "state": machine.state.as_str(),
            "primary": names(&b.primary),
            "overflow": names(&b.overflow),
            "utilisation": d.utilisation,
            "share": machine.share,
            "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        })
        .to_string();
        let hook = match event {
            Event::Warm => b.on_warm.clone(),
            Event::Idle => b.on_idle.clone(),
        };
        (hook, body)
    });
    Some(Tick { step, inputs, hook })
}

/// The server's burst task: [`burst_tick`] every `interval` (the first at once), webhooks
/// fired on their own tasks. The lifecycle lives in the profile's live object, so it carries
/// over reloads (and task restarts).
pub(crate) async fn drive(
    name: crate::dns::name::Name,
    cfg: ProfileBurst,
    profile: Arc<ProfileLive>,
    shared: Arc<Shared>,
    rt: Arc<Runtime>,
) {
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snap = shared.load();
        let Some(t) = burst_tick(&name, &snap, now()) else { continue };
        after_tick(&name, t, &profile, &rt);
    }
}

/// What follows a burst tick, local or fleet: its transition and event logged, its webhook
/// fired on a task of its own.
pub(crate) fn after_tick(
    name: &crate::dns::name::Name,
    t: Tick,
    profile: &Arc<ProfileLive>,
    rt: &Arc<Runtime>,
) {
    if let Some((from, to)) = t.step.transition {
        let share = profile.burst_share();
        info!(profile = %name, from = from.as_str(), to = to.as_str(), utilisation = ?t.inputs.utilisation, share, "burst state changed");
    }
    if let Some(event) = t.step.event {
        info!(profile = %name, event = ?event, "burst event");
    }
    if let Some((Some(hook), body)) = t.hook {
        tokio::spawn(fire(hook, body, profile.clone(), rt.clone(), name.to_string()));
    }
}

/// How many times a webhook is tried, and the first back-off (doubling each time).
const HOOK_ATTEMPTS: u32 = 5;
const HOOK_BACKOFF: Duration = Duration::from_millis(500);

/// Runs one webhook with retries; never awaited by anything on the query path.
pub async fn fire(
    hook: crate::config::Hook,
    body: String,
    live: Arc<ProfileLive>,
    rt: Arc<Runtime>,
    profile: String,
) {
    use crate::config::Hook;
    let mut delay = HOOK_BACKOFF;
    for attempt in 1..=HOOK_ATTEMPTS {
        let outcome = match &hook {
            Hook::Http { url, secret, client } => {
                let signature = secret.as_deref().map(|s| sign(s, body.as_bytes()));
                match tokio::time::timeout(
                    Duration::from_secs(10),
                    post(url, &body, signature.as_deref(), client),
                )
                .await
                {
                    Ok(Ok(code)) if (200..300).contains(&code) => Ok(()),
                    Ok(Ok(code)) => Err(format!("HTTP status {code}")),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("no answer within 10s".into()),
                }
            }
            Hook::Exec { command } => run(command, &body).await,
        };
        match outcome {
            Ok(()) => {
                info!(%profile, attempt, "webhook delivered");
                if let Some(b) = live.burst().as_mut() {
                    b.webhooks_ok += 1;
                }
                rt.metrics.webhooks_ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            Err(e) if attempt < HOOK_ATTEMPTS => {
                warn!(%profile, attempt, error = %e, retry_in = ?delay, "webhook failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(%profile, attempts = attempt, error = %e, "webhook failed; giving up");
                if let Some(b) = live.burst().as_mut() {
                    b.webhooks_failed += 1;
                }
                rt.metrics.webhooks_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// `sha256=<hex>` of HMAC-SHA256 over `body` with `secret`: the `X-Meridian-Signature` value.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// How much of an exec hook's output is kept (per stream); the rest is read, counted and
/// discarded, so a chatty hook can neither fill memory nor the log.
pub const HOOK_OUTPUT_CAP: usize = 64 * 1024;
/// How long an exec hook may run before its whole process group is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads `r` to its end, keeping the first [`HOOK_OUTPUT_CAP`] bytes; returns them and how
/// many more were discarded.
async fn capped(mut r: impl tokio::io::AsyncRead + Unpin) -> (Vec<u8>, u64) {
    use tokio::io::AsyncReadExt;
    let (mut kept, mut dropped) = (Vec::new(), 0u64);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, dropped),
            Ok(n) => {
                let room = HOOK_OUTPUT_CAP.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                dropped += (n - room) as u64;
            }
        }
    }
}

/// Runs an exec hook with `body` on its stdin: in its own process group, its output kept up
/// to a cap and logged as one line with the exit status. It is done when it has exited and
/// its output is closed; past [`HOOK_TIMEOUT`] the whole group is killed (a child it forked
/// and that still holds its output included).
async fn run(command: &[String], body: &str) -> Result<(), String> {
    run_with_timeout(command, body, HOOK_TIMEOUT).await
}

pub async fn run_with_timeout(
    command: &[String],
    body: &str,
    limit: Duration,
) -> Result<(), String> {
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", command[0]))?;
    let pgid = child.id();
    let stdin = child.stdin.take();
    let body = body.as_bytes().to_vec();
    let feed = async move {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&body).await;
        }
    };
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let ((), (stdout, out_dropped), (stderr, err_dropped), status) = tokio::join!(
            feed,
            async {
                match out {
                    Some(o) => capped(o).await,
                    None => (Vec::new(), 0),
                }
            },
            async {
                match err {
                    Some(e) => capped(e).await,
                    None => (Vec::new(), 0),
                }
            },
            child.wait()
        );
        (stdout, out_dropped, stderr, err_dropped, status)
    };
    let outcome = tokio::time::timeout(limit, work).await;
    let Ok((stdout, out_dropped, stderr, err_dropped, status)) = outcome else {
        // The hook, and whatever it started, all of them.
        if let Some(pgid) = pgid {
            crate::sys::kill_group(pgid);
        }
        return Err(format!(
            "{} ran longer than {limit:?}; its process group was killed",
            command[0]
        ));
    };
    let status = status.map_err(|e| format!("{}: {e}", command[0]))?;
    let text = |b: &[u8], dropped: u64| {
        let t = String::from_utf8_lossy(b).trim().replace('\n', " | ");
        if dropped > 0 { format!("{t} … ({dropped} more bytes discarded)") } else { t }
    };
    let (stdout, stderr) = (text(&stdout, out_dropped), text(&stderr, err_dropped));
    info!(hook = %command[0], %status, stdout = %stdout, stderr = %stderr, "exec hook finished");
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} exited with {status}: {stderr}", command[0]))
    }
}

/// A JSON POST; returns the status code.
pub async fn post(
    url: &str,
    body: &str,
    signature: Option<&str>,
    client: &crate::config::ClientConfig,
) -> Result<u16, String> {
    let u = crate::control::http::parse_url(url)?;
    let mut headers = vec![("User-Agent", "Meridian-Webhook/1.0")];
    if let Some(sig) = signature {
        headers.push(("X-Meridian-Signature", sig));
    }
    let payload = Some(("application/json", body.as_bytes().to_vec()));
    crate::control::http::call(&u, client, "POST", &headers, payload).await.map(|(code, _)| code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_has_the_right_half_life() {
        let t0 = Instant::now();
        let h = Duration::from_secs(10);
        assert_eq!(ewma(None, 100.0, t0, h), 100.0);
        // After one half-life, a new sample moves the value half way.
        let v = ewma(Some((100.0, t0)), 200.0, t0 + h, h);
        assert!((v - 150.0).abs() < 1e-9, "{v}");
        // A sample right after another barely moves it.
        let v = ewma(Some((100.0, t0)), 200.0, t0 + Duration::from_millis(10), h);
        assert!(v < 101.0, "{v}");
    }

    #[test]
    fn prometheus_text_exposition() {
        let body = "# HELP req Requests.\n# TYPE req gauge\nreq{site=\"onprem\",code=\"200\"} 120.5\nreq{site=\"azure\",code=\"200\"} 30\nother 1\nsolo 7 1700000000\n";
        let l = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(prometheus_text(body, "req", &l("site", "onprem")), Ok(120.5));
        assert_eq!(prometheus_text(body, "solo", &[]), Ok(7.0));
        assert!(prometheus_text(body, "req", &[]).unwrap_err().contains("2 series match"));
        assert!(
            prometheus_text(body, "req", &l("site", "mars")).unwrap_err().contains("no series")
        );
    }

    #[test]
    fn prometheus_text_the_hard_cases() {
        let l = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let body = "# TYPE http_requests counter\n\
                    http_requests{path=\"/a,b\",note=\"say \\\"hi\\\"\"} 3 1700000000000\n\
                    http_requests{path=\"/c\",note=\"two\\nlines\"} 4\n\
                    http_requests{path=\"/d}\",note=\"back\\\\slash\"} 5\n\
                    untyped_thing 6\n\
                    ratio{q=\"x\"} NaN\n";
        assert_eq!(prometheus_text(body, "http_requests", &l("path", "/a,b")), Ok(3.0));
        assert_eq!(prometheus_text(body, "http_requests", &l("note", "say \"hi\"")), Ok(3.0));
        assert_eq!(prometheus_text(body, "http_requests", &l("note", "two\nlines")), Ok(4.0));
        assert_eq!(prometheus_text(body, "http_requests", &l("path", "/d}")), Ok(5.0));
        assert_eq!(prometheus_text(body, "http_requests", &l("note", "back\\slash")), Ok(5.0));
        assert_eq!(prometheus_text(body, "untyped_thing", &[]), Ok(6.0));
        assert!(prometheus_text(body, "ratio", &[]).unwrap().is_nan());
        let e = prometheus_text("m{a=\"x} 1\n", "m", &[]).unwrap_err();
        assert!(e.starts_with("line 1: unterminated"), "{e}");
        let e = prometheus_text("m 1 soon\n", "m", &[]).unwrap_err();
        assert!(e.contains("timestamp"), "{e}");
    }

    /// `/metrics` of a real Prometheus server (Debian's 2.42), captured once: every sample
    /// line parses, and series are picked by their labels.
    #[test]
    fn a_real_prometheus_exposition() {
        let body = include_str!("../../tests/data/prometheus-metrics.txt");
        let mut samples = 0;
        for line in body.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            parse_sample(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            samples += 1;
        }
        assert!(samples > 250, "{samples}");
        let l = |pairs: &[(&str, &str)]| {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>()
        };
        assert_eq!(
            prometheus_text(body, "prometheus_build_info", &l(&[("branch", "debian/sid")])),
            Ok(1.0)
        );
        assert_eq!(
            prometheus_text(body, "go_gc_duration_seconds", &l(&[("quantile", "0")])),
            Ok(7.0665e-05)
        );
        assert!(prometheus_text(body, "go_gc_duration_seconds", &[]).is_err(), "five quantiles");
    }

    #[test]
    fn query_encoding() {
        assert_eq!(encode("sum(rate(x[1m]))"), "sum%28rate%28x%5B1m%5D%29%29");
    }

    #[test]
    fn webhook_signature_is_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
