//! The burst tasks: one per profile with a burst rule, local (`load::drive`: the lifecycle
//! stepped from this instance's own readings every `interval`) or, for a
//! `[profile.burst.fleet]` rule, the fleet's.
//!
//! Fleet mode: at every aligned
//! instant `t = k × interval` of the wall clock (decided `lag` later, so that scrapes up to `t`
//! have arrived), it reads the window `[t - window, t]` from the shared Prometheus with range
//! queries at step `interval`, replays the lifecycle over it (`traffic::replay`), and publishes
//! the result. Every instance reads the same points, so every instance decides the same.
//!
//! Per tick and profile, it costs Prometheus one range query per primary endpoint (and per
//! overflow endpoint with a load source), one for the fleet's published share and one for the
//! fleet's health reports, each of `window / interval + 1` points.
//!
//! When Prometheus cannot be read (down, slow, an error), the tick is decided locally, as a
//! rule without `fleet` is: the lifecycle continues from the fleet's last decision with this
//! instance's own load readings and health (a load from an unreachable Prometheus is unknown,
//! so the state and share hold where the fleet left them; the safety exits still act on the
//! instance's own probes). The status says so, and the next readable tick rejoins the fleet.

use crate::config::{FleetConfig, LoadSource};
use crate::control::load::{self, Tick};
use crate::control::runtime::Runtime;
use crate::control::supervise::Bound;
use crate::dns::name::Name;
use crate::live::{FleetView, ProfileLive};
use crate::state::{Shared, Snapshot};
use crate::traffic::policy::{ProfileBurst, available};
use crate::traffic::replay::{self, Point};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tracing::{info, warn};

/// One burst task per profile with a burst rule, re-planned after every reload. The lifecycle
/// lives in the profile's live object, so it carries over reloads (and task restarts).
pub async fn supervise(
    shared: Arc<Shared>,
    rt: Arc<Runtime>,
    reloaded: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) {
    let plan = |snap: &Snapshot| {
        let mut want = HashMap::new();
        for (pid, p) in snap.policies.profiles.iter().enumerate() {
            if let Some(b) = &p.burst {
                let live = snap.signals.profile(pid as u32).clone();
                want.insert(p.name.clone(), Bound { spec: b.clone(), live });
            }
        }
        want
    };
    let start = |name: &crate::dns::name::Name, b: &Bound<ProfileBurst, ProfileLive>| {
        let (name, spec, live) = (name.clone(), b.spec.clone(), b.live.clone());
        let (shared, rt) = (shared.clone(), rt.clone());
        Some(if spec.fleet.is_some() {
            tokio::spawn(drive(name, spec, live, shared, rt))
        } else {
            tokio::spawn(load::drive(name, spec, live, shared, rt))
        })
    };
    crate::control::supervise::supervise(shared.clone(), reloaded, stop, plan, start).await;
}

/// The aligned instant to decide next after wall time `now`: the first `k × interval` with
/// `k × interval + lag > now`.
pub fn next_instant(now: SystemTime, interval: Duration, lag: Duration) -> SystemTime {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default().saturating_sub(lag);
    let step = interval.as_nanos().max(1);
    let k = since.as_nanos() / step + 1;
    UNIX_EPOCH + Duration::from_nanos((k * step) as u64)
}

/// The next aligned instant to decide (see [`next_instant`]), once it is `lag` old.
pub async fn aligned(interval: Duration, lag: Duration) -> SystemTime {
    let instant = next_instant(SystemTime::now(), interval, lag);
    let wake = (instant + lag).duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wake).await;
    instant
}

/// One range query: the series it returned, each as (labels, values by point index).
async fn range(
    f: &FleetConfig,
    query: &str,
    start: f64,
    end: f64,
    step: f64,
    n: usize,
) -> Result<Vec<(serde_json::Value, Vec<Option<f64>>)>, String> {
    let params = [
        ("query", query.to_string()),
        ("start", format!("{start:.3}")),
        ("end", format!("{end:.3}")),
        ("step", step.to_string()),
    ];
    let result = load::prometheus_api(&f.url, &f.client, "query_range", &params)
        .await
        .map_err(|e| format!("{query}: {e}"))?;
    Ok(result
        .iter()
        .map(|series| {
            let mut values = vec![None; n];
            for pair in series["values"].as_array().into_iter().flatten() {
                let (Some(ts), Some(x)) =
                    (pair[0].as_f64(), pair[1].as_str().and_then(|s| s.parse::<f64>().ok()))
                else {
                    continue;
                };
                let i = ((ts - start) / step).round();
                if i >= 0.0 && (i as usize) < n && x.is_finite() {
                    values[i as usize] = Some(x);
                }
            }
            (series["metric"].clone(), values)
        })
        .collect())
}

/// The selector of the fleet's own series for profile `name`.
fn selector(f: &FleetConfig, name: &Name) -> String {
    let extra = if f.matchers.is_empty() { String::new() } else { format!(",{}", f.matchers) };
    format!("{{profile=\"{name}\"{extra}}}")
}

/// Reads the window ending at `instant` for profile `pid`'s rule.
pub async fn fetch(
    snap: &Snapshot,
    pid: u32,
    b: &ProfileBurst,
    f: &FleetConfig,
    instant: SystemTime,
) -> Result<Vec<Point>, String> {
    let p = &snap.policies;
    let name = &p.profiles[pid as usize].name;
    let step = b.interval.as_secs_f64();
    let end = instant.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let start = end - f.window.as_secs_f64();
    let n = (f.window.as_secs_f64() / step).round() as usize + 1;
    let load_of = |id: u32| p.endpoints[id as usize].load.as_ref();
    // One load series per endpoint: (endpoint, capacity, values).
    let loads = |ids: &[u32]| {
        let ids: Vec<u32> = ids.to_vec();
        async move {
            let mut out = Vec::new();
            for id in ids {
                let Some(cfg) = load_of(id) else { continue };
                let LoadSource::Prometheus { query, .. } = &cfg.source else { continue };
                let series = range(f, query, start, end, step, n).await?;
                let values = match series.as_slice() {
                    [one] => one.1.clone(),
                    [] => vec![None; n],
                    many => {
                        return Err(format!(
                            "the load query of {} returned {} series; it must return one",
                            p.endpoints[id as usize].name,
                            many.len()
                        ));
                    }
                };
                // The check every sample passes, whatever its source.
                let values = values
                    .into_iter()
                    .map(|v| v.and_then(|x| load::validate(x, cfg.capacity).ok()))
                    .collect::<Vec<_>>();
                out.push((id, cfg.capacity, values));
            }
            Ok::<_, String>(out)
        }
    };
    let sel = selector(f, name);
    let share_q = format!("max(meridian_burst_share{sel})");
    let health_q = format!("avg by (endpoint) (meridian_endpoint_available{sel})");
    let (primary, overflow, share, health) = tokio::try_join!(
        loads(&b.primary),
        loads(&b.overflow),
        range(f, &share_q, start, end, step, n),
        range(f, &health_q, start, end, step, n),
    )?;
    let share: Vec<Option<f64>> =
        share.into_iter().next().map(|s| s.1).unwrap_or_else(|| vec![None; n]);
    // Gaps in an endpoint's reports (an instant before the first scrape, a missed one) take the
    // nearest earlier report, or the first one: a function of the shared data alone, so every
    // instance fills them alike. Only an endpoint with no report in the whole window falls
    // back to this instance's own view.
    let health: HashMap<String, Vec<Option<f64>>> = health
        .into_iter()
        .filter_map(|(m, v)| Some((m["endpoint"].as_str()?.to_string(), filled(v))))
        .collect();
    let total_capacity: f64 =
        b.primary.iter().filter_map(|&id| load_of(id)).map(|c| c.capacity).sum();
    let every_overflow_loaded = !b.overflow.is_empty() && overflow.len() == b.overflow.len();
    // Consensus: up when at least half the reporting instances say available; an endpoint no
    // instance reported in the window counts as this instance sees it now.
    let up = |ids: &[u32], j: usize| -> Option<bool> {
        let mut reported = false;
        let mut any = false;
        for &id in ids {
            let e = &p.endpoints[id as usize];
            match health.get(&e.name).and_then(|v| v[j]) {
                Some(frac) => {
                    reported = true;
                    any |= frac >= 0.5;
                }
                None => any |= available(p, id, &snap.signals, 0),
            }
        }
        reported.then_some(any)
    };
    Ok((0..n)
        .map(|j| {
            let (mut l, mut c) = (0.0, 0.0);
            for (_, cap, v) in &primary {
                if let Some(x) = v[j] {
                    l += x;
                    c += cap;
                }
            }
            let overflow_load = every_overflow_loaded
                .then(|| overflow.iter().map(|(_, _, v)| v[j]).sum::<Option<f64>>())
                .flatten()
                .filter(|_| total_capacity > 0.0)
                .map(|o| o / total_capacity);
            Point {
                utilisation: (c > 0.0).then(|| l / c),
                overflow: overflow_load,
                fleet_share: share[j],
                primary_up: up(&b.primary, j),
                overflow_up: up(&b.overflow, j),
            }
        })
        .collect())
}

/// Each gap takes the nearest earlier value, or (before the first) the first one.
fn filled(mut v: Vec<Option<f64>>) -> Vec<Option<f64>> {
    let Some(first) = v.iter().flatten().next().copied() else { return v };
    let mut last = first;
    for x in v.iter_mut() {
        match x {
            Some(now) => last = *now,
            None => *x = Some(last),
        }
    }
    v
}

/// The fleet's decision for `instant` from `points` (one per interval, the last at `instant`),
/// published: the replay, and the fleet view beside it. `now` is the clock the lifecycle
/// continues on. `meridian simulate` decides a fleet rule's ticks through this too.
pub fn decide(
    name: &Name,
    snap: &Snapshot,
    points: &[Point],
    instant: SystemTime,
    now: std::time::Instant,
) -> Option<Tick> {
    let p = &snap.policies;
    let pid = p.profile_id(name)?;
    let b = p.profiles[pid as usize].burst.as_ref()?;
    let f = b.fleet.as_ref()?;
    let local_up = (
        b.primary.iter().any(|&id| available(p, id, &snap.signals, 0)),
        b.overflow.iter().any(|&id| available(p, id, &snap.signals, 0)),
    );
    let r = replay::replay(&b.rule, b.interval, points, now, local_up);
    let v = fleet_view(f, points, instant, None);
    load::publish(name, snap, pid, |d| {
        let step = replay::step_between(d.machine.state, r.machine.state);
        d.machine = r.machine.clone();
        d.utilisation = r.observed;
        d.fleet = Some(v);
        (step, r.last)
    })
}

/// What a tick decided from, for the status and `explain`.
fn fleet_view(
    f: &FleetConfig,
    points: &[Point],
    instant: SystemTime,
    error: Option<String>,
) -> FleetView {
    let last = points.last().copied().unwrap_or_default();
    FleetView {
        instant,
        window: f.window,
        points: points.len(),
        with_load: points.iter().filter(|p| p.utilisation.is_some()).count(),
        fleet_share: last.fleet_share,
        primary_up: last.primary_up,
        overflow_up: last.overflow_up,
        error,
    }
}

/// One fleet tick of profile `name` for `instant`: fetch, replay, publish; on a fetch error,
/// the local tick, with the reason in the status.
pub async fn tick(name: &Name, snap: &Snapshot, instant: SystemTime) -> Option<Tick> {
    let p = &snap.policies;
    let pid = p.profile_id(name)?;
    let b = p.profiles[pid as usize].burst.as_ref()?;
    let f = b.fleet.as_ref()?;
    // A fetch must finish well within the interval (and never past 10 s).
    let limit = (b.interval * 9 / 10).min(Duration::from_secs(10));
    let fetched = match tokio::time::timeout(limit, fetch(snap, pid, b, f, instant)).await {
        Ok(r) => r,
        Err(_) => Err(format!("Prometheus did not answer within {limit:?}")),
    };
    match fetched {
        Ok(points) => decide(name, snap, &points, instant, load::now()),
        Err(e) => {
            // Decided locally, as a rule without `fleet` is, and said so in the same publish.
            let now = load::now();
            let inputs = load::burst_inputs(snap, b, now);
            load::publish(name, snap, pid, |d| {
                let step = d.machine.step(now, inputs, &b.rule);
                d.utilisation = inputs.utilisation;
                let mut v = d.fleet.clone().unwrap_or_else(|| fleet_view(f, &[], instant, None));
                v.instant = instant;
                v.error = Some(e);
                d.fleet = Some(v);
                (step, inputs)
            })
        }
    }
}

/// The burst task of a fleet rule: one [`tick`] per aligned instant.
pub async fn drive(
    name: Name,
    cfg: ProfileBurst,
    profile: Arc<ProfileLive>,
    shared: Arc<Shared>,
    rt: Arc<Runtime>,
) {
    let Some(f) = cfg.fleet.clone() else { return };
    let mut failing = false;
    loop {
        let instant = aligned(cfg.interval, f.lag).await;
        let snap = shared.load();
        let Some(t) = tick(&name, &snap, instant).await else { continue };
        let error = profile.burst().as_ref().and_then(|d| d.fleet.as_ref()?.error.clone());
        match (&error, failing) {
            (Some(e), false) => {
                warn!(profile = %name, error = %e, "fleet data unreadable; deciding locally")
            }
            (None, true) => {
                info!(profile = %name, "fleet data readable again; deciding as the fleet")
            }
            _ => {}
        }
        failing = error.is_some();
        load::after_tick(&name, t, &profile, &rt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_take_the_nearest_earlier_report() {
        assert_eq!(
            filled(vec![None, Some(1.0), None, Some(0.0), None]),
            vec![Some(1.0), Some(1.0), Some(1.0), Some(0.0), Some(0.0)]
        );
        assert_eq!(filled(vec![None, None]), vec![None, None]);
    }

    #[test]
    fn instants_are_aligned_to_the_interval_after_the_lag() {
        let at = |s: f64| UNIX_EPOCH + Duration::from_secs_f64(s);
        let i = Duration::from_secs(5);
        // At 1002.3 s with a 2 s lag, 1000 was decided at 1002: next is 1005, decided at 1007.
        assert_eq!(next_instant(at(1002.3), i, Duration::from_secs(2)), at(1005.0));
        assert_eq!(next_instant(at(1001.9), i, Duration::from_secs(2)), at(1000.0));
    }
}
