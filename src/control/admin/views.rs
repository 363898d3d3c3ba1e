//! JSON views of the live state: `/v1/status` and its parts.

use super::*;

/// RFC 3339 UTC, second precision.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// An endpoint's status as operators see it: Disabled when turned off (configuration or
/// override), a nested endpoint's derived from its child profile, else the signal.
pub fn shown_status(snap: &Snapshot, id: u32) -> Status {
    let p = &snap.policies;
    if !policy::enabled(p, id, &snap.signals) {
        return Status::Disabled;
    }
    match p.endpoints[id as usize].target {
        Target::Profile(_) if policy::available(p, id, &snap.signals, 0) => Status::Online,
        Target::Profile(_) => Status::Degraded,
        _ => snap.signals.status(id),
    }
}

pub(super) fn endpoint_json(snap: &Snapshot, id: u32) -> Value {
    let e = &snap.policies.endpoints[id as usize];
    let target = match &e.target {
        Target::Addresses { v4, v6 } => {
            json!(
                v4.iter()
                    .map(|a| a.to_string())
                    .chain(v6.iter().map(|a| a.to_string()))
                    .collect::<Vec<_>>()
            )
        }
        Target::Cname(n) => json!({ "cname": n.to_string() }),
        Target::Profile(c) => {
            json!({ "profile": snap.policies.profiles[*c as usize].name.to_string() })
        }
    };
    let live = snap.signals.endpoint(id);
    // One lock for the whole view: the status, the probe behind it and the override agree.
    let d = live.detail().clone();
    let now = SystemTime::now();
    let mut v = json!({
        "name": e.name,
        "key": e.key.to_string(),
        "target": target,
        "status": shown_status(snap, id).as_str(),
        "enabled_in_config": e.enabled,
        "monitored": e.monitor.is_some(),
        "answers": live.answers(),
    });
    if let Some(m) = &e.monitor {
        v["since"] = json!(rfc3339(d.health.since));
        // This instance's own verdict; with a consensus, what the fleet's probes said.
        v["verdict"] = json!(d.health.verdict.map(|s| s.as_str()));
        if m.consensus {
            v["consensus"] = match &d.consensus {
                Some(c) => json!({
                    "up": c.up,
                    "fraction_up": c.fraction,
                    "instant": rfc3339(c.instant),
                }),
                None => json!(null),
            };
        }
        if let Some(p) = &d.health.last_probe {
            v["last_probe"] = json!({
                "at": rfc3339(p.at),
                "ok": p.ok,
                "status_code": p.status_code,
                "error": p.error,
                "latency_ms": (p.latency.as_secs_f64() * 1e6).round() / 1e3,
            });
        }
    }
    if let Some(cfg) = &e.load {
        let l = &d.load;
        let fresh = l.fresh(cfg.stale_after, crate::control::load::now());
        v["load"] = json!({
            "raw": l.raw,
            "smoothed": l.smoothed,
            "capacity": cfg.capacity,
            "utilisation": fresh.map(|x| x / cfg.capacity),
            "age_seconds": l.age(crate::control::load::now()).map(|a| a.as_secs_f64()),
            "stale": fresh.is_none(),
            "samples": l.samples,
            "rejected": l.rejected,
            "failures": l.failures,
            "error": if l.failing { l.error.clone() } else { None },
        });
    }
    if let Some(o) = &d.admin {
        v["override"] = json!({
            "enabled": o.enabled,
            "reason": o.reason,
            "since": rfc3339(o.set_at),
            "expires_in_seconds": o.expires_at.map(|t| t.duration_since(now).map_or(0, |d| d.as_secs())),
        });
    }
    v
}

pub(super) fn status(snap: &Snapshot, rt: &Runtime) -> Value {
    let profiles: Vec<Value> = snap
        .policies
        .profiles
        .iter()
        .enumerate()
        .map(|(pid, p)| {
            let live = snap.signals.profile(pid as u32);
            let mut v = json!({
                "name": p.name.to_string(),
                "method": p.method.as_str(),
                "ttl": p.ttl,
                "queries": live.queries(),
                "endpoints": p.endpoints.iter().map(|&id| endpoint_json(snap, id)).collect::<Vec<_>>(),
            });
            if p.burst.is_some() {
                let b = live.burst().clone();
                v["burst"] = json!({
                    "state": live.burst_state().as_str(),
                    "share": live.burst_share(),
                    "utilisation": b.as_ref().and_then(|b| b.utilisation),
                    // The controller's view: what it estimates and why the share is where it is.
                    "estimated_demand": b.as_ref().and_then(|b| b.machine.demand),
                    "held_share": b.as_ref().and_then(|b| b.machine.held),
                    "why": b.as_ref().map(|b| b.machine.why.clone()),
                    "last_transition": b.as_ref().and_then(|b| b.last_transition).map(rfc3339),
                    "transitions": b.as_ref().map_or(0, |b| b.transitions),
                    "webhooks_delivered": b.as_ref().map_or(0, |b| b.webhooks_ok),
                    "webhooks_failed": b.as_ref().map_or(0, |b| b.webhooks_failed),
                    // Fleet mode: the instant decided, the window replayed, the consensus
                    // inputs, and whether the shared data could be read.
                    "fleet": b.as_ref().and_then(|b| b.fleet.as_ref()).map(|f| json!({
                        "instant": rfc3339(f.instant),
                        "instant_unix": f.instant.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()),
                        "window_seconds": f.window.as_secs_f64(),
                        "points": f.points,
                        "points_with_load": f.with_load,
                        "fleet_share": f.fleet_share,
                        "primary_up": f.primary_up,
                        "overflow_up": f.overflow_up,
                        "decided_by": if f.error.is_some() { "local" } else { "fleet" },
                        "error": f.error,
                    })),
                });
            }
            v
        })
        .collect();
    let reload = rt.reload_info();
    let serials: serde_json::Map<String, Value> =
        snap.zones.zones().iter().map(|z| (z.origin().to_string(), json!(z.serial()))).collect();
    let secondaries: Vec<Value> = snap
        .secondaries
        .iter()
        .map(|s| {
            let d = s.live.detail().clone();
            let served = snap.zones.zones().iter().find(|z| *z.origin() == s.origin);
            json!({
                "zone": s.origin.to_string(),
                "primaries": s.spec.primaries.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                "state": match (served, d.expired) {
                    (_, true) => "expired",
                    (Some(_), false) => "serving",
                    (None, false) => "waiting for the first transfer",
                },
                "serial": served.map(|z| z.serial()),
                "copy": s.file.display().to_string(),
                "last_refresh": d.refreshed.map(rfc3339),
                "last_transfer": d.transferred.map(rfc3339),
                "last_transfer_kind": d.kind,
                "last_transfer_from": d.from.map(|a| a.to_string()),
                "transfers": d.transfers,
                "failures": d.failures,
                "notifies": d.notifies,
                "last_error": d.last_error,
                "last_error_at": d.failed.map(rfc3339),
            })
        })
        .collect();
    json!({
        "config": snap.path.display().to_string(),
        "zones": snap.zones.zones().iter().map(|z| z.origin().to_string()).collect::<Vec<_>>(),
        "zone_serials": serials,
        "secondaries": secondaries,
        "last_reload": reload.last_at.map(rfc3339),
        "last_reload_error": reload.last_error,
        "queries_answered": rt.metrics.answered(),
        "profiles": profiles,
    })
}
