//! `meridian simulate`: replays a scenario against a profile in virtual time, with the real
//! routing (`policy::select`) and the real burst lifecycle (`burst::Machine`).
//!
//! A population of resolvers shares the client demand equally; each caches its answer for the
//! TTL it was given (the transition TTL while a burst is under way), so a change of share
//! reaches traffic only as caches expire, as it does in production. The primary's load is what
//! its cached answers send it; it goes through the same smoothing as a live load source and
//! feeds the controller, closing the loop.

use crate::config::Scenario;
use crate::state::Snapshot;
use crate::traffic::burst::{Event, Inputs, Machine, State};
use crate::traffic::policy::{self, Client, Rng, Selection, Status};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// The state of things at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub t: Duration,
    pub demand: f64,
    /// Requests per second reaching each endpoint of the snapshot (by endpoint id).
    pub per_endpoint: Vec<f64>,
    /// The primary's smoothed utilisation.
    pub utilisation: Option<f64>,
    pub state: State,
    pub share: f64,
}

/// What a simulation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub profile: String,
    /// Names of the endpoints that received traffic, by endpoint id (others are empty).
    pub names: Vec<String>,
    pub samples: Vec<Sample>,
    pub transitions: Vec<(Duration, State, State)>,
    pub events: Vec<(Duration, Event)>,
}

fn demand_at(points: &[(Duration, f64)], t: Duration) -> f64 {
    match points.iter().position(|p| p.0 > t) {
        None => points.last().map_or(0.0, |p| p.1),
        Some(0) => points[0].1,
        Some(i) => {
            let ((t0, v0), (t1, v1)) = (points[i - 1], points[i]);
            let f = (t - t0).as_secs_f64() / (t1 - t0).as_secs_f64().max(1e-9);
            v0 + (v1 - v0) * f
        }
    }
}

/// Runs `sc` against `snap` (which it may change: statuses and burst signals are set as the
/// scenario says).
pub fn run(snap: &Snapshot, sc: &Scenario) -> Result<Outcome, String> {
    let p = &snap.policies;
    let pid = p
        .profile_by_name(&sc.profile)
        .ok_or_else(|| format!("no profile {:?} in the configuration", sc.profile))?;
    let profile = &p.profiles[pid as usize];
    let burst = profile.burst.as_ref();
    let step = sc
        .step
        .or(burst.map(|b| b.interval))
        .unwrap_or(Duration::from_secs(5))
        .max(Duration::from_millis(100));
    // Primary capacity and smoothing come from the primaries' load sources.
    let load = |id: u32| p.endpoints[id as usize].load.as_ref();
    let primaries: Vec<(u32, f64)> = burst
        .map(|b| b.primary.iter().map(|&id| (id, load(id).map_or(1.0, |l| l.capacity))).collect())
        .unwrap_or_default();
    let half_life =
        burst.and_then(|b| load(*b.primary.first()?)).map_or(Duration::ZERO, |l| l.half_life);
    for (id, _) in p.endpoints.iter().enumerate() {
        if p.endpoints[id].enabled {
            snap.signals.set_status(id as u32, Status::Online);
        }
    }
    let endpoint_id = |name: &str| {
        profile
            .endpoints
            .iter()
            .copied()
            .find(|&id| p.endpoints[id as usize].name == name)
            .ok_or_else(|| format!("scenario event: no endpoint {name:?} in the profile"))
    };
    let events: Vec<(Duration, u32, Status)> = sc
        .events
        .iter()
        .map(|e| Ok((e.at, endpoint_id(&e.endpoint)?, e.status)))
        .collect::<Result<_, String>>()?;

    let t0 = Instant::now();
    let mut machine = Machine::new(t0);
    let mut smoothed: Option<(f64, Instant)> = None;
    let mut rng = Rng::new(1);
    let mut sel = Selection::default();
    let n = sc.resolvers as usize;
    // Each resolver: its answer (an endpoint id) and when its cache expires.
    let mut caches: Vec<Option<(u32, Duration)>> = vec![None; n];
    let mut out = Outcome {
        profile: profile.name.to_string(),
        names: vec![String::new(); p.endpoints.len()],
        samples: Vec::new(),
        transitions: Vec::new(),
        events: Vec::new(),
    };
    let mut applied = 0;
    let mut t = Duration::ZERO;
    while t <= sc.duration {
        while applied < events.len() && events[applied].0 <= t {
            snap.signals.set_status(events[applied].1, events[applied].2);
            applied += 1;
        }
        let demand = demand_at(&sc.demand, t);
        let ttl = match (&profile.burst, machine.state) {
            (Some(b), s) if s != State::Idle => b.transition_ttl.unwrap_or(profile.ttl),
            _ => profile.ttl,
        };
        let mut per_endpoint = vec![0.0; p.endpoints.len()];
        for (i, cache) in caches.iter_mut().enumerate() {
            if cache.is_none_or(|(_, exp)| exp <= t) {
                let addr = IpAddr::V4(Ipv4Addr::new(10, (i / 256 % 256) as u8, (i % 256) as u8, 1));
                let geo = snap.geo.as_ref().filter(|_| profile.needs_geo).map(|g| g.lookup(addr));
                policy::select(
                    p,
                    pid,
                    &snap.signals,
                    &Client { addr, geo },
                    &mut rng,
                    &mut sel,
                    &mut (),
                );
                let mut expires = t + Duration::from_secs(ttl as u64);
                if cache.is_none() {
                    // Real resolvers are not synchronised: spread the first expiries over a
                    // TTL, so that caches do not all expire in the same tick ever after.
                    expires = t + Duration::from_secs_f64(ttl as f64 * (i + 1) as f64 / n as f64);
                }
                *cache = sel.chosen().first().map(|&id| (id, expires));
            }
            if let Some((id, _)) = cache {
                per_endpoint[*id as usize] += demand / n as f64;
            }
        }
        for (id, v) in per_endpoint.iter().enumerate() {
            if *v > 0.0 && out.names[id].is_empty() {
                out.names[id] = p.endpoints[id].name.clone();
            }
        }
        // The primary's load, smoothed as a live load source smooths it.
        let now = t0 + t;
        let utilisation = if primaries.is_empty() {
            None
        } else {
            let u = primaries.iter().map(|&(id, cap)| per_endpoint[id as usize] / cap).sum::<f64>()
                / primaries.len() as f64;
            let v = crate::control::load::ewma(smoothed, u, now, half_life);
            smoothed = Some((v, now));
            Some(v)
        };
        if let Some(pb) = burst {
            let inputs = Inputs {
                utilisation,
                primary_down: !pb
                    .primary
                    .iter()
                    .any(|&id| policy::available(p, id, &snap.signals, 0)),
                overflow_online: pb
                    .overflow
                    .iter()
                    .any(|&id| policy::available(p, id, &snap.signals, 0)),
            };
            let s = machine.step(now, inputs, &pb.rule);
            if let Some((from, to)) = s.transition {
                out.transitions.push((t, from, to));
            }
            if let Some(e) = s.event {
                out.events.push((t, e));
            }
            snap.signals.set_burst(pid, machine.state, machine.share);
        }
        out.samples.push(Sample {
            t,
            demand,
            per_endpoint,
            utilisation,
            state: machine.state,
            share: machine.share,
        });
        t += step;
    }
    Ok(out)
}

fn clock(t: Duration) -> String {
    let s = t.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The outcome as a table, about `rows` lines long, plus the transitions and events.
pub fn table(o: &Outcome, rows: usize) -> String {
    let ids: Vec<usize> = (0..o.names.len()).filter(|&i| !o.names[i].is_empty()).collect();
    let mut s = format!("profile {}\n{:>8} {:>9}", o.profile, "time", "demand");
    for &i in &ids {
        let _ = write!(s, " {:>12}", o.names[i]);
    }
    let _ = writeln!(s, " {:>6} {:>6}  state", "util", "share");
    let every = (o.samples.len() / rows.max(1)).max(1);
    for x in o.samples.iter().step_by(every) {
        let _ = write!(s, "{:>8} {:>9.1}", clock(x.t), x.demand);
        for &i in &ids {
            let pct = if x.demand > 0.0 { 100.0 * x.per_endpoint[i] / x.demand } else { 0.0 };
            let _ = write!(s, " {:>7.1} {:>3.0}%", x.per_endpoint[i], pct);
        }
        let u = x.utilisation.map_or("-".to_string(), |u| format!("{u:.2}"));
        let _ = writeln!(s, " {u:>6} {:>6.2}  {}", x.share, x.state.as_str());
    }
    for (t, from, to) in &o.transitions {
        let _ = writeln!(s, "{}  {} -> {}", clock(*t), from.as_str(), to.as_str());
    }
    for (t, e) in &o.events {
        let _ = writeln!(
            s,
            "{}  webhook {}",
            clock(*t),
            if *e == Event::Warm { "on_warm" } else { "on_idle" }
        );
    }
    s
}

/// The outcome as an SVG chart: requests per second per endpoint, the primary's utilisation
/// (dashed, right axis), and the burst states as shaded bands.
pub fn svg(o: &Outcome) -> String {
    let (w, h, l, r, top, bottom) = (960.0, 440.0, 70.0, 890.0, 50.0, 380.0);
    let ids: Vec<usize> = (0..o.names.len()).filter(|&i| !o.names[i].is_empty()).collect();
    let t_max = o.samples.last().map_or(1.0, |x| x.t.as_secs_f64()).max(1.0);
    // The axis ends on a round number: 1, 2 or 5 times a power of ten.
    let peak = o.samples.iter().map(|x| x.demand).fold(1.0, f64::max) * 1.1;
    let magnitude = 10f64.powf(peak.log10().floor());
    let y_max =
        [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|&v| v >= peak).unwrap_or(peak);
    let x = |t: Duration| l + (r - l) * t.as_secs_f64() / t_max;
    let y = |v: f64| bottom - (bottom - top) * v / y_max;
    let yu = |u: f64| bottom - (bottom - top) * (u / 1.5).min(1.0);
    let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{l}\" y=\"22\" font-size=\"15\">meridian simulate: {}</text>\n",
        o.profile
    );
    // State bands.
    let band = |st: State| match st {
        State::Warming => Some("#fff3c4"),
        State::Bursting => Some("#ffd9b3"),
        State::Draining => Some("#d6e9ff"),
        State::Idle => None,
    };
    let mut i = 0;
    while i < o.samples.len() {
        let st = o.samples[i].state;
        let mut j = i;
        while j + 1 < o.samples.len() && o.samples[j + 1].state == st {
            j += 1;
        }
        if let Some(c) = band(st) {
            let end = o.samples.get(j + 1).map_or(o.samples[j].t, |n| n.t);
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{}\" fill=\"{c}\"/>",
                x(o.samples[i].t),
                (x(end) - x(o.samples[i].t)).max(1.0),
                bottom - top
            );
        }
        i = j + 1;
    }
    // Axes and grid.
    for k in 0..=5 {
        let v = y_max * k as f64 / 5.0;
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" x2=\"{r}\" y1=\"{0:.1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\">{v:.0}</text>",
            y(v),
            l - 6.0,
            y(v) + 4.0
        );
        let u = 1.5 * k as f64 / 5.0;
        let _ = writeln!(s, "<text x=\"{}\" y=\"{:.1}\">{u:.1}</text>", r + 6.0, yu(u) + 4.0);
        let t = Duration::from_secs_f64(t_max * k as f64 / 5.0);
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(t),
            bottom + 18.0,
            clock(t)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {0})\" text-anchor=\"middle\">requests/s</text>",
        (top + bottom) / 2.0
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" transform=\"rotate(90 {0} {1})\" text-anchor=\"middle\">primary utilisation</text>",
        w - 20.0,
        (top + bottom) / 2.0
    );
    let _ = writeln!(
        s,
        "<line x1=\"{l}\" x2=\"{r}\" y1=\"{bottom}\" y2=\"{bottom}\" stroke=\"#333\"/><line x1=\"{l}\" x2=\"{l}\" y1=\"{top}\" y2=\"{bottom}\" stroke=\"#333\"/>"
    );
    // Series.
    let line = |pts: Vec<(f64, f64)>, color: &str, dash: &str| {
        let d: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" {dash} points=\"{}\"/>\n",
            d.join(" ")
        )
    };
    s += &line(
        o.samples.iter().map(|p| (x(p.t), y(p.demand))).collect(),
        "#999",
        "stroke-dasharray=\"2,3\"",
    );
    for (k, &i) in ids.iter().enumerate() {
        s += &line(
            o.samples.iter().map(|p| (x(p.t), y(p.per_endpoint[i]))).collect(),
            colors[k % colors.len()],
            "",
        );
    }
    s += &line(
        o.samples.iter().filter_map(|p| Some((x(p.t), yu(p.utilisation?)))).collect(),
        "#000",
        "stroke-dasharray=\"6,4\"",
    );
    // Legend.
    let mut lx = l;
    let mut legend = vec![("demand".to_string(), "#999")];
    legend.extend(
        ids.iter().enumerate().map(|(k, &i)| (o.names[i].clone(), colors[k % colors.len()])),
    );
    legend.push(("primary utilisation".into(), "#000"));
    for (name, c) in legend {
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"32\" width=\"14\" height=\"4\" fill=\"{c}\"/><text x=\"{}\" y=\"38\">{name}</text>",
            lx + 18.0
        );
        lx += 30.0 + 7.0 * name.len() as f64;
    }
    for (st, name) in
        [(State::Warming, "warming"), (State::Bursting, "bursting"), (State::Draining, "draining")]
    {
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"28\" width=\"14\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"38\">{name}</text>",
            band(st).unwrap_or("#fff"),
            lx + 18.0
        );
        lx += 30.0 + 7.0 * name.len() as f64;
    }
    s += "</svg>\n";
    s
}
