//! `/metrics`: the Prometheus text exposition, and its OpenMetrics form.

use super::*;

pub(super) fn metrics(snap: &Snapshot, rt: &Runtime) -> String {
    use crate::traffic::burst::State;
    let mut out = String::with_capacity(8192);
    rt.metrics.render(&mut out);
    let p = &snap.policies;
    // Every endpoint of the current snapshot, then those a reload removed within the grace
    // period (counters only, so that a last scrape sees their final counts; their status is
    // no longer anyone's).
    let current: Vec<(String, String, &crate::live::EndpointLive)> = p
        .endpoints
        .iter()
        .enumerate()
        .map(|(id, e)| {
            (label(&e.key.profile.to_string()), label(&e.name), &**snap.signals.endpoint(id as u32))
        })
        .collect();
    let retired = rt.retired_endpoints();
    let retired: Vec<(String, String, &crate::live::EndpointLive)> = retired
        .iter()
        .map(|(k, l)| (label(&k.profile.to_string()), label(&k.endpoint), &**l))
        .collect();
    let all = || current.iter().chain(retired.iter());
    let retired_profiles = rt.retired_profiles();

    header(
        &mut out,
        "meridian_profile_queries_total",
        "counter",
        "Queries answered by a traffic-managed name, by profile.",
    );
    for (pid, pr) in p.profiles.iter().enumerate() {
        let n = label(&pr.name.to_string());
        let v = snap.signals.profile(pid as u32).queries();
        let _ = writeln!(out, "meridian_profile_queries_total{{profile=\"{n}\"}} {v}");
    }
    for (name, l) in &retired_profiles {
        let n = label(&name.to_string());
        let _ = writeln!(out, "meridian_profile_queries_total{{profile=\"{n}\"}} {}", l.queries());
    }
    header(
        &mut out,
        "meridian_endpoint_answers_total",
        "counter",
        "Answers that named an endpoint, by profile and endpoint.",
    );
    for (pn, en, l) in all() {
        let _ = writeln!(
            out,
            "meridian_endpoint_answers_total{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            l.answers()
        );
    }
    header(&mut out, "meridian_endpoint_status", "gauge", "1 for the endpoint's current status.");
    for (id, (pn, en, _)) in current.iter().enumerate() {
        let st = shown_status(snap, id as u32);
        for s in [
            Status::CheckingEndpoint,
            Status::Online,
            Status::Degraded,
            Status::Disabled,
            Status::Unmonitored,
        ] {
            let _ = writeln!(
                out,
                "meridian_endpoint_status{{profile=\"{pn}\",endpoint=\"{en}\",status=\"{}\"}} {}",
                s.as_str(),
                u8::from(st == s)
            );
        }
    }
    header(
        &mut out,
        "meridian_endpoint_available",
        "gauge",
        "1 when the endpoint can be answered with.",
    );
    for (id, (pn, en, _)) in current.iter().enumerate() {
        let avail = policy::available(p, id as u32, &snap.signals, 0);
        let _ = writeln!(
            out,
            "meridian_endpoint_available{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            u8::from(avail)
        );
    }
    // Probe counters of monitored endpoints (and retired ones that were probed).
    let probed: Vec<(&String, &String, crate::live::Health)> = current
        .iter()
        .enumerate()
        .filter(|(id, _)| p.endpoints[*id].monitor.is_some())
        .map(|(_, x)| x)
        .chain(retired.iter())
        .map(|(pn, en, l)| (pn, en, l.detail().health.clone()))
        .collect();
    // This instance's own verdict, before any consensus: what the fleet's consensus reads.
    header(
        &mut out,
        "meridian_endpoint_probe_up",
        "gauge",
        "1 when this instance's own probes find the endpoint up, 0 when down.",
    );
    for (id, (pn, en, l)) in current.iter().enumerate() {
        if p.endpoints[id].monitor.is_none() {
            continue;
        }
        let up = match l.detail().health.verdict {
            Some(Status::Online) => 1,
            Some(Status::Degraded) => 0,
            _ => continue,
        };
        let _ =
            writeln!(out, "meridian_endpoint_probe_up{{profile=\"{pn}\",endpoint=\"{en}\"}} {up}");
    }
    header(&mut out, "meridian_probes_total", "counter", "Health probes, by result.");
    for (pn, en, h) in &probed {
        for (result, n) in [("success", h.probes_ok), ("failure", h.probes_failed)] {
            let _ = writeln!(
                out,
                "meridian_probes_total{{profile=\"{pn}\",endpoint=\"{en}\",result=\"{result}\"}} {n}"
            );
        }
    }
    header(&mut out, "meridian_probe_duration_seconds", "summary", "Health probe duration.");
    for (pn, en, h) in &probed {
        let _ = writeln!(
            out,
            "meridian_probe_duration_seconds_sum{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            h.probe_seconds
        );
        let _ = writeln!(
            out,
            "meridian_probe_duration_seconds_count{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            h.probes_ok + h.probes_failed
        );
    }
    header(
        &mut out,
        "meridian_endpoint_status_changes_total",
        "counter",
        "Endpoint status transitions from probes.",
    );
    for (pn, en, h) in &probed {
        let _ = writeln!(
            out,
            "meridian_endpoint_status_changes_total{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            h.transitions
        );
    }
    let loads: Vec<(&String, &String, crate::live::Load, Option<f64>)> = current
        .iter()
        .enumerate()
        .filter_map(|(id, (pn, en, l))| {
            let cfg = p.endpoints[id].load.as_ref()?;
            let load = l.detail().load.clone();
            let u =
                load.fresh(cfg.stale_after, crate::control::load::now()).map(|v| v / cfg.capacity);
            Some((pn, en, load, u))
        })
        .collect();
    header(
        &mut out,
        "meridian_endpoint_utilisation",
        "gauge",
        "Smoothed load over capacity; absent when unknown or stale.",
    );
    for (pn, en, _, u) in &loads {
        if let Some(u) = u {
            let _ = writeln!(
                out,
                "meridian_endpoint_utilisation{{profile=\"{pn}\",endpoint=\"{en}\"}} {u}"
            );
        }
    }
    header(
        &mut out,
        "meridian_endpoint_load_failures_total",
        "counter",
        "Failed reads of an endpoint's load source.",
    );
    for (pn, en, l, _) in &loads {
        let _ = writeln!(
            out,
            "meridian_endpoint_load_failures_total{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            l.failures
        );
    }
    header(
        &mut out,
        "meridian_endpoint_load_rejected_total",
        "counter",
        "Load samples refused (not finite, negative, or over 100 times capacity).",
    );
    for (pn, en, l, _) in &loads {
        let _ = writeln!(
            out,
            "meridian_endpoint_load_rejected_total{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            l.rejected
        );
    }
    let bursts: Vec<(String, &crate::live::ProfileLive)> = p
        .profiles
        .iter()
        .enumerate()
        .filter(|(_, pr)| pr.burst.is_some())
        .map(|(pid, pr)| (label(&pr.name.to_string()), &**snap.signals.profile(pid as u32)))
        .collect();
    header(&mut out, "meridian_burst_state", "gauge", "1 for the profile's current burst state.");
    for (n, l) in &bursts {
        let st = l.burst_state();
        for s in [State::Idle, State::Warming, State::Bursting, State::Draining] {
            let _ = writeln!(
                out,
                "meridian_burst_state{{profile=\"{n}\",state=\"{}\"}} {}",
                s.as_str(),
                u8::from(st == s)
            );
        }
    }
    header(
        &mut out,
        "meridian_burst_share",
        "gauge",
        "Share of answers spilled to overflow endpoints.",
    );
    for (n, l) in &bursts {
        let _ = writeln!(out, "meridian_burst_share{{profile=\"{n}\"}} {}", l.burst_share());
    }
    header(&mut out, "meridian_burst_transitions_total", "counter", "Burst state changes.");
    for (n, l) in &bursts {
        let t = l.burst().as_ref().map_or(0, |b| b.transitions);
        let _ = writeln!(out, "meridian_burst_transitions_total{{profile=\"{n}\"}} {t}");
    }
    header(
        &mut out,
        "meridian_admin_overrides",
        "gauge",
        "Endpoint overrides currently set by operators.",
    );
    let overrides = current.iter().filter(|(_, _, l)| l.detail().admin.is_some()).count();
    let _ = writeln!(out, "meridian_admin_overrides {overrides}");
    header(&mut out, "meridian_zone_serial", "gauge", "The SOA serial of each zone served.");
    for z in snap.zones.zones() {
        let n = label(&z.origin().to_string());
        let _ = writeln!(out, "meridian_zone_serial{{zone=\"{n}\"}} {}", z.serial());
    }
    let secs = |t: Option<std::time::SystemTime>| {
        t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
    };
    let secondaries: Vec<(String, crate::live::ZoneDetail)> = snap
        .secondaries
        .iter()
        .map(|s| (label(&s.origin.to_string()), s.live.detail().clone()))
        .collect();
    header(
        &mut out,
        "meridian_zone_transfers_total",
        "counter",
        "Transfers into secondary zones, applied or failed (a refresh that reached no primary, or got nothing usable).",
    );
    for (n, d) in &secondaries {
        let _ = writeln!(
            out,
            "meridian_zone_transfers_total{{zone=\"{n}\",result=\"ok\"}} {}",
            d.transfers
        );
        let _ = writeln!(
            out,
            "meridian_zone_transfers_total{{zone=\"{n}\",result=\"failed\"}} {}",
            d.failures
        );
    }
    header(
        &mut out,
        "meridian_zone_last_transfer_timestamp_seconds",
        "gauge",
        "When a secondary zone's last transfer was applied (0: none since start).",
    );
    for (n, d) in &secondaries {
        let _ = writeln!(
            out,
            "meridian_zone_last_transfer_timestamp_seconds{{zone=\"{n}\"}} {}",
            secs(d.transferred)
        );
    }
    header(
        &mut out,
        "meridian_zone_last_refresh_timestamp_seconds",
        "gauge",
        "When a primary last confirmed a secondary zone (the SOA's expire counts from here).",
    );
    for (n, d) in &secondaries {
        let _ = writeln!(
            out,
            "meridian_zone_last_refresh_timestamp_seconds{{zone=\"{n}\"}} {}",
            secs(d.refreshed)
        );
    }
    header(
        &mut out,
        "meridian_zone_available",
        "gauge",
        "1 when a secondary zone has data to serve; 0 before its first transfer and past its expire (SERVFAIL).",
    );
    for s in snap.secondaries.iter() {
        let n = label(&s.origin.to_string());
        let up = snap.zones.zones().iter().any(|z| *z.origin() == s.origin);
        let _ = writeln!(out, "meridian_zone_available{{zone=\"{n}\"}} {}", u8::from(up));
    }
    header(&mut out, "meridian_build_info", "gauge", "Always 1; the labels say which build runs.");
    let _ = writeln!(
        out,
        "meridian_build_info{{version=\"{}\",os=\"{}\",arch=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    crate::control::process::render(&mut out, rt.started());
    out
}

/// The exposition in OpenMetrics 1.0 text (for a scraper that asks for it): the same
/// samples; a counter's family is named without its `_total` suffix; `# EOF` ends it.
pub(super) fn to_openmetrics(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        let meta = line.strip_prefix("# HELP ").map(|r| ("# HELP ", r));
        let meta = meta.or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((tag, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let family = if counters.contains(name) {
                    name.strip_suffix("_total").unwrap_or(name)
                } else {
                    name
                };
                let _ = writeln!(out, "{tag}{family} {tail}");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str("# EOF\n");
    out
}
