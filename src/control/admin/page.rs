//! The HTML status page and its charts.

use super::*;

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The read-only status page: the same as `/v1/status`, as HTML that refreshes itself, with a
/// chart of answers per second per endpoint over the sampled history.
pub(super) fn status_page(snap: &Snapshot, rt: &Runtime) -> String {
    let v = status(snap, rt);
    let mut h = String::with_capacity(16 * 1024);
    h += "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">\
          <title>Meridian status</title><style>\
          body{font:14px sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 20px}\
          td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}th{background:#f4f4f4}\
          .Online{color:#1a7f37}.Degraded{color:#c62828}.Disabled{color:#777}.CheckingEndpoint{color:#9a6700}\
          .muted{color:#777}</style></head><body>";
    let _ = write!(
        h,
        "<h1>Meridian</h1><p class=\"muted\">configuration {} · zones {} · {} queries answered · last reload {}",
        escape(v["config"].as_str().unwrap_or("")),
        escape(
            &v["zones"]
                .as_array()
                .map(|z| z.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
        v["queries_answered"],
        escape(v["last_reload"].as_str().unwrap_or("never"))
    );
    if let Some(e) = v["last_reload_error"].as_str() {
        let _ = write!(h, "</p><p class=\"Degraded\">last reload failed: {}", escape(e));
    }
    h += "</p>";
    h += &chart(rt, snap);
    for p in v["profiles"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<h2>{}</h2><p class=\"muted\">{}, TTL {}, {} queries",
            escape(p["name"].as_str().unwrap_or("")),
            escape(p["method"].as_str().unwrap_or("")),
            p["ttl"],
            p["queries"]
        );
        if p["burst"].is_object() {
            let b = &p["burst"];
            let _ = write!(
                h,
                " · burst <b>{}</b>, share {:.0} %, utilisation {}",
                escape(b["state"].as_str().unwrap_or("")),
                b["share"].as_f64().unwrap_or(0.0) * 100.0,
                b["utilisation"]
                    .as_f64()
                    .map_or("unknown".into(), |u| format!("{:.0} %", u * 100.0))
            );
            if let Some(why) = b["why"].as_str().filter(|w| !w.is_empty()) {
                let _ = write!(h, "<br><small>controller: {}</small>", escape(why));
            }
        }
        h += "</p><table><tr><th>endpoint</th><th>target</th><th>status</th><th>since</th><th>last probe</th><th>load</th><th>override</th><th>answers</th></tr>";
        for e in p["endpoints"].as_array().into_iter().flatten() {
            let status = e["status"].as_str().unwrap_or("");
            let probe = match &e["last_probe"] {
                Value::Object(pr) => match (
                    pr.get("status_code").and_then(Value::as_u64),
                    pr.get("error").and_then(Value::as_str),
                ) {
                    (_, Some(err)) => format!("failed: {}", escape(err)),
                    (Some(c), None) => format!(
                        "{c} in {} ms",
                        pr.get("latency_ms").and_then(Value::as_f64).unwrap_or(0.0)
                    ),
                    (None, None) => "ok".into(),
                },
                _ => "<span class=\"muted\">not monitored</span>".into(),
            };
            let load = match &e["load"] {
                Value::Object(l) => match l.get("utilisation").and_then(Value::as_f64) {
                    Some(u) => format!("{:.0} %", u * 100.0),
                    None => "<span class=\"Degraded\">unknown</span>".into(),
                },
                _ => String::new(),
            };
            let ovr = match &e["override"] {
                Value::Object(o) => format!(
                    "{} {}",
                    if o.get("enabled") == Some(&Value::Bool(false)) {
                        "disabled"
                    } else {
                        "enabled"
                    },
                    escape(o.get("reason").and_then(Value::as_str).unwrap_or(""))
                ),
                _ => String::new(),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td>{probe}</td><td>{load}</td><td>{ovr}</td><td>{}</td></tr>",
                escape(e["name"].as_str().unwrap_or("")),
                escape(&target_text(&e["target"])),
                escape(e["since"].as_str().unwrap_or("")),
                e["answers"]
            );
        }
        h += "</table>";
    }
    h += "<p class=\"muted\">JSON: <a href=\"/v1/status\">/v1/status</a> · metrics: <a href=\"/metrics\">/metrics</a></p></body></html>\n";
    h
}

/// An endpoint's target as people write it: addresses, `cname X`, `profile X`.
pub(super) fn target_text(t: &Value) -> String {
    match t {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// The status page's charts over the sampled history (every 10 s): one per burst profile
/// (its endpoints' answers per second; its utilisation, share and thresholds; state bands and
/// transitions), then answers per second for every endpoint. Drawn by the same
/// [`crate::tools::chart`] as `meridian simulate --svg`.
pub(super) fn chart(rt: &Runtime, snap: &Snapshot) -> String {
    use crate::tools::chart::Chart;
    let points = rt.history();
    if points.len() < 2 {
        return "<p class=\"muted\">The charts appear after two samples (every 10 seconds).</p>"
            .into();
    }
    let rate = |a: &HistoryPoint, b: &HistoryPoint, key: &EndpointKey| {
        let get = |p: &HistoryPoint| p.answers.iter().find(|(k, _)| k == key).map_or(0, |x| x.1);
        let dt = b.at.duration_since(a.at).map_or(1.0, |d| d.as_secs_f64().max(0.001));
        get(b).saturating_sub(get(a)) as f64 / dt
    };
    let start = points[1].at;
    let times: Vec<f64> = points[1..]
        .iter()
        .map(|p| p.at.duration_since(start).map_or(0.0, |d| d.as_secs_f64()))
        .collect();
    let series = |keys: &[&EndpointKey]| -> Vec<(String, Vec<f64>)> {
        keys.iter()
            .map(|k| (k.to_string(), points.windows(2).map(|w| rate(&w[0], &w[1], k)).collect()))
            .filter(|(_, v): &(String, Vec<f64>)| v.iter().any(|x| *x > 0.0))
            .collect()
    };
    // Wall-clock labels (UTC): the page is read live.
    let clock_start = start.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs());
    let mut out = String::new();
    for p in snap.policies.profiles.iter() {
        let Some(b) = &p.burst else { continue };
        let keys: Vec<&EndpointKey> =
            p.endpoints.iter().map(|&id| &snap.policies.endpoints[id as usize].key).collect();
        let bursts: Vec<Option<&crate::control::runtime::BurstPoint>> =
            points[1..].iter().map(|pt| pt.bursts.iter().find(|x| x.profile == p.name)).collect();
        let mut events = Vec::new();
        for (i, w) in bursts.windows(2).enumerate() {
            if let (Some(a), Some(c)) = (w[0], w[1])
                && a.state != c.state
            {
                events.push((times[i + 1], format!("→ {}", c.state.as_str())));
            }
        }
        out += &Chart {
            title: format!("{} (burst)", p.name),
            times: times.clone(),
            clock_start,
            rates: series(&keys),
            rate_unit: "answers/s".into(),
            utilisation: bursts.iter().map(|x| x.and_then(|x| x.utilisation)).collect(),
            share: bursts.iter().map(|x| x.map_or(0.0, |x| x.share)).collect(),
            thresholds: Some((b.rule.target, b.rule.burst_at, b.rule.release_at)),
            bands: bursts
                .iter()
                .map(|x| x.and_then(|x| crate::tools::simulate::band(x.state)))
                .collect(),
            events,
        }
        .svg();
    }
    let all: Vec<&EndpointKey> = snap.policies.endpoints.iter().map(|e| &e.key).collect();
    let rates = series(&all);
    if rates.is_empty() {
        out += "<p class=\"muted\">No traffic-managed answers yet.</p>";
        return out;
    }
    out += &Chart {
        title: "answers per second, every endpoint".into(),
        times,
        clock_start,
        rates,
        rate_unit: "answers/s".into(),
        ..Chart::default()
    }
    .svg();
    out
}
