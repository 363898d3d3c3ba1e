//! Health by consensus: for monitors with `consensus = "prometheus"`, what the fleet's probes
//! say decides an endpoint's status, not this instance's probes alone (Traffic Manager probes
//! from many locations; "fewer than half up means down").
//!
//! Every instance exports its own verdict (`meridian_endpoint_probe_up`), and Prometheus
//! scrapes them all. At every aligned instant `t` (multiples of the shortest consensus
//! monitor's interval in wall-clock time, read `lag` later), one instant query at `time=t`
//! gives, per endpoint, the share of reporting instances that find it up: at least half is
//! Online, less is Degraded. Every instance reads the same value for the same instant, so they
//! flip an endpoint in the same interval, and one instance's broken probe path moves nothing.
//!
//! An endpoint no instance reported, or every endpoint when Prometheus cannot be read, falls
//! back to this instance's own verdict (logged when it starts and stops).

use crate::control::bursts::aligned;
use crate::control::load;
use crate::live::Consensus;
use crate::state::Shared;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tracing::{info, warn};

/// Reads the fleet's verdicts at `instant`: (profile, endpoint) → share of instances up.
async fn read(
    f: &crate::config::FleetShared,
    instant: SystemTime,
) -> Result<HashMap<(String, String), f64>, String> {
    let sel = if f.matchers.is_empty() { String::new() } else { format!("{{{}}}", f.matchers) };
    let query = format!("avg by (profile, endpoint) (meridian_endpoint_probe_up{sel})");
    let t = instant.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let params = [("query", query), ("time", format!("{t:.3}"))];
    let result = load::prometheus_api(&f.url, &f.client, "query", &params).await?;
    let mut out = HashMap::new();
    for s in &result {
        let (Some(p), Some(e), Some(x)) = (
            s["metric"]["profile"].as_str(),
            s["metric"]["endpoint"].as_str(),
            s["value"][1].as_str().and_then(|x| x.parse::<f64>().ok()),
        ) else {
            continue;
        };
        out.insert((p.to_string(), e.to_string()), x);
    }
    Ok(out)
}

/// The consensus task: runs while the configuration has consensus monitors and a `[fleet]`
/// table (re-read every tick, so a reload takes effect at the next instant).
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        let snap = shared.load();
        let p = &snap.policies;
        let consensus: Vec<u32> = (0..p.endpoints.len() as u32)
            .filter(|&id| p.endpoints[id as usize].monitor.as_ref().is_some_and(|m| m.consensus))
            .collect();
        let fleet = snap.fleet.clone();
        let (Some(f), false) = (fleet, consensus.is_empty()) else {
            // Nothing to do now; look again after a while (or a reload).
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                _ = stop.changed() => return,
            }
        };
        let interval = consensus
            .iter()
            .filter_map(|&id| p.endpoints[id as usize].monitor.as_ref().map(|m| m.interval))
            .min()
            .unwrap_or(Duration::from_secs(10));
        drop(snap);
        let instant = tokio::select! {
            t = aligned(interval, f.lag) => t,
            _ = stop.changed() => return,
        };
        let limit = (interval * 9 / 10).min(Duration::from_secs(10));
        let got = match tokio::time::timeout(limit, read(&f, instant)).await {
            Ok(r) => r,
            Err(_) => Err(format!("Prometheus did not answer within {limit:?}")),
        };
        let snap = shared.load();
        let p = &snap.policies;
        match &got {
            Err(e) if !failing => {
                warn!(error = %e, "fleet health unreadable; each endpoint follows this instance's probes")
            }
            Ok(_) if failing => info!("fleet health readable again"),
            _ => {}
        }
        failing = got.is_err();
        for (id, e) in p.endpoints.iter().enumerate() {
            if !e.monitor.as_ref().is_some_and(|m| m.consensus) {
                continue;
            }
            let key = (e.key.profile.to_string(), e.name.clone());
            let c = got.as_ref().ok().and_then(|m| m.get(&key)).map(|&fraction| Consensus {
                up: fraction >= 0.5,
                fraction,
                instant,
            });
            let live = snap.signals.endpoint(id as u32);
            let before = live.status();
            live.set_consensus(c);
            if live.status() != before {
                info!(endpoint = %e.key, from = before.as_str(), to = live.status().as_str(), "status changed by the fleet's consensus");
            }
        }
    }
}
