//! `meridian simulate`: replays a scenario against a profile in virtual time, through the
//! server's own code: routing (`policy::select`), load samples (`load::record_at`: validation,
//! smoothing, staleness) and the burst rule's tick (`load::burst_tick`, at the rule's
//! `interval`, the first at once, as the server's burst task runs it).
//!
//! What is simulated is the world around the server ([`World`]): a population of resolvers
//! shares the client demand equally; each caches its answer for the TTL it was given (the
//! transition TTL while a burst is under way), so a change of share reaches traffic only as
//! caches expire, as it does in production. The load each endpoint then receives is what its
//! load source reports, every `step` for a push source, every `interval` for a polled one.
//! The world is looked at 1 ms after each multiple of `step`, so that it never shares an
//! instant with a tick and the order of the two never depends on scheduling.

use crate::config::{Change, LoadSource, Scenario};
use crate::state::Snapshot;
use crate::traffic::burst::{Event, State};
use crate::traffic::policy::{self, Client, ProfileId, Rng, Selection, Status};
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
    /// The primary's smoothed utilisation, as the tick read it.
    pub utilisation: Option<f64>,
    pub state: State,
    pub share: f64,
    /// The share resolvers held, and the estimated demand (× the primary's capacity).
    pub held: Option<f64>,
    pub estimated: Option<f64>,
    /// Every primary endpoint was unavailable.
    pub primary_down: bool,
    /// Fleet mode: the consensus inputs at this instant (the fleet's share, primary and
    /// overflow up) and the points the replay read.
    pub fleet: Option<crate::live::FleetView>,
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
    /// When a scenario event changed an endpoint (for charts): (time, endpoint, what).
    pub marks: Vec<(Duration, String, String)>,
    /// Answers handed out naming an endpoint that was down at the time (routing must make it 0;
    /// caches still holding an earlier answer are not counted).
    pub answers_to_down: u64,
    /// The burst rule simulated, if the profile has one.
    pub rule: Option<crate::traffic::burst::Rule>,
    pub interval: Duration,
    /// The primary endpoints (ids) and their capacity together.
    pub primary: Vec<usize>,
    pub capacity: f64,
    /// Fleet mode (`[profile.burst.fleet]`): the window each tick replays.
    pub fleet_window: Option<Duration>,
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

/// The offset of the world's instants from the multiples of `step` (see the module comment).
pub const WORLD_OFFSET: Duration = Duration::from_millis(1);

/// The world around the server: clients, resolvers with caches, the scenario's events, the
/// overflow's start-up, and what load sources report. It reads and writes only the live
/// objects of the snapshot it is handed, so it runs the same beside `simulate`'s ticks and
/// beside a real server's burst task.
#[derive(Debug)]
pub struct World {
    sc: Scenario,
    pid: ProfileId,
    rng: Rng,
    sel: Selection,
    /// Each resolver: its answer (an endpoint id) and when its cache expires.
    caches: Vec<Option<(u32, Duration)>>,
    applied: usize,
    /// Endpoints whose load source the scenario silenced.
    silent: Vec<bool>,
    /// Endpoints down by the scenario's events (kept when the overflow start-up changes).
    forced: Vec<Option<Status>>,
    last_state: State,
    overflow_up_at: Option<Duration>,
    overflow_is_up: bool,
    next_poll: Vec<Duration>,
    pub per_endpoint: Vec<f64>,
    pub demand: f64,
    pub marks: Vec<(Duration, String, String)>,
    pub answers_to_down: u64,
}

impl World {
    /// Sets every enabled endpoint Online (the overflow down, with a start-up time) and
    /// returns the world at time 0.
    pub fn new(snap: &Snapshot, sc: &Scenario) -> Result<World, String> {
        let p = &snap.policies;
        let pid = p
            .profile_by_name(&sc.profile)
            .ok_or_else(|| format!("no profile {:?} in the configuration", sc.profile))?;
        let profile = &p.profiles[pid as usize];
        for e in &sc.events {
            if !profile.endpoints.iter().any(|&id| p.endpoints[id as usize].name == e.endpoint) {
                return Err(format!("scenario event: no endpoint {:?} in the profile", e.endpoint));
            }
        }
        let n = p.endpoints.len();
        for id in 0..n {
            if p.endpoints[id].enabled {
                snap.signals.set_status(id as u32, Status::Online);
            }
        }
        let mut w = World {
            sc: sc.clone(),
            pid,
            rng: Rng::new(1),
            sel: Selection::default(),
            caches: vec![None; sc.resolvers as usize],
            applied: 0,
            silent: vec![false; n],
            forced: vec![None; n],
            last_state: State::Idle,
            overflow_up_at: None,
            overflow_is_up: false,
            next_poll: vec![Duration::ZERO; n],
            per_endpoint: vec![0.0; n],
            demand: 0.0,
            marks: Vec::new(),
            answers_to_down: 0,
        };
        w.overflow_status(snap, Duration::ZERO);
        Ok(w)
    }

    fn overflow(&self, snap: &Snapshot) -> Vec<u32> {
        let b = snap.policies.profiles[self.pid as usize].burst.as_ref();
        b.map(|b| b.overflow.to_vec()).unwrap_or_default()
    }

    /// With a start-up time, the overflow is up only from `startup` after the warm event.
    fn overflow_status(&mut self, snap: &Snapshot, t: Duration) {
        if self.sc.overflow_startup.is_none() {
            return;
        }
        let up = self.overflow_up_at.is_some_and(|at| t >= at);
        if up != self.overflow_is_up {
            self.overflow_is_up = up;
            let what = if up { "overflow up" } else { "overflow down" };
            self.marks.push((t, "overflow".into(), what.into()));
        }
        for id in self.overflow(snap) {
            let status = self.forced[id as usize].unwrap_or(if up {
                Status::Online
            } else {
                Status::Degraded
            });
            snap.signals.set_status(id, status);
        }
    }

    /// The world at time `t` (virtual; `now` on the load sources' clock).
    pub fn advance(&mut self, snap: &Snapshot, t: Duration, now: Instant) {
        let p = &snap.policies;
        let pid = self.pid;
        let profile = &p.profiles[pid as usize];
        // The public side starts after the warm event and stops after the idle event, as the
        // webhooks would have it.
        let state = snap.signals.burst_state(pid);
        if self.last_state == State::Idle && state != State::Idle {
            self.overflow_up_at = self.sc.overflow_startup.map(|d| t + d);
        } else if self.last_state != State::Idle && state == State::Idle {
            self.overflow_up_at = None;
        }
        self.last_state = state;
        while self.applied < self.sc.events.len() && self.sc.events[self.applied].at <= t {
            let e = &self.sc.events[self.applied];
            let id = profile
                .endpoints
                .iter()
                .copied()
                .find(|&id| p.endpoints[id as usize].name == e.endpoint)
                .expect("checked in new");
            let what = match e.change {
                Change::Status(s) => {
                    self.forced[id as usize] = (s != Status::Online).then_some(s);
                    snap.signals.set_status(id, s);
                    s.as_str().to_string()
                }
                Change::LoadSilent => {
                    self.silent[id as usize] = true;
                    "load silent".into()
                }
                Change::LoadResumed => {
                    self.silent[id as usize] = false;
                    "load resumed".into()
                }
            };
            self.marks.push((e.at, e.endpoint.clone(), what));
            self.applied += 1;
        }
        self.overflow_status(snap, t);

        self.demand = demand_at(&self.sc.demand, t);
        // The TTL a fresh answer carries, as `resolve` gives it.
        let ttl = match (&profile.burst, state) {
            (Some(b), s) if s != State::Idle => b.transition_ttl.unwrap_or(profile.ttl),
            _ => profile.ttl,
        };
        let n = self.caches.len();
        let per_resolver = self.demand / n as f64;
        self.per_endpoint.iter_mut().for_each(|v| *v = 0.0);
        for (i, cache) in self.caches.iter_mut().enumerate() {
            if cache.is_none_or(|(_, exp)| exp <= t) {
                let addr = IpAddr::V4(Ipv4Addr::new(10, (i / 256 % 256) as u8, (i % 256) as u8, 1));
                let geo = snap.geo.as_ref().filter(|_| profile.needs_geo).map(|g| g.lookup(addr));
                policy::select(
                    p,
                    pid,
                    &snap.signals,
                    &Client { addr, geo },
                    &mut self.rng,
                    &mut self.sel,
                    &mut (),
                );
                // Counted as `resolve` counts them: the burst rule reads these counters.
                snap.signals.profile(pid).count_query();
                for &id in self.sel.chosen() {
                    snap.signals.endpoint(id).count_answer();
                    if !snap.signals.status(id).serves() {
                        self.answers_to_down += 1;
                    }
                }
                let mut expires = t + Duration::from_secs(ttl as u64);
                if cache.is_none() {
                    // Real resolvers are not synchronised: spread the first expiries over a
                    // TTL, so that caches do not all expire in the same step ever after.
                    expires = t + Duration::from_secs_f64(ttl as f64 * (i + 1) as f64 / n as f64);
                }
                *cache = self.sel.chosen().first().map(|&id| (id, expires));
            }
            if let Some((id, _)) = cache {
                self.per_endpoint[*id as usize] += per_resolver;
            }
        }
        // What each load source reports: a push source at every step, a polled one at its
        // own interval.
        for &id in profile.endpoints.iter() {
            let e = &p.endpoints[id as usize];
            let Some(cfg) = &e.load else { continue };
            if self.silent[id as usize] {
                continue;
            }
            if cfg.source != LoadSource::Push {
                if t < self.next_poll[id as usize] {
                    continue;
                }
                self.next_poll[id as usize] = t + cfg.interval;
            }
            let _ = crate::control::load::record_at(
                snap.signals.endpoint(id),
                &e.key,
                cfg,
                self.per_endpoint[id as usize],
                now,
            );
        }
    }
}

/// The point the shared store would hold at `now` for rule `b`: the primary's last raw load
/// while fresh over its capacity, the overflow's (when every overflow endpoint has a load
/// source), the share published, and who is up.
fn shared_point(
    snap: &Snapshot,
    pid: ProfileId,
    b: &crate::traffic::policy::ProfileBurst,
    now: Instant,
) -> crate::traffic::replay::Point {
    use crate::traffic::policy::available;
    let (p, sig) = (&snap.policies, &snap.signals);
    let raw = |id: u32| {
        let cfg = p.endpoints[id as usize].load.as_ref()?;
        let d = sig.endpoint(id).detail();
        d.load.fresh(cfg.stale_after, now).and(d.load.raw).map(|r| (r, cfg.capacity))
    };
    let (mut load, mut cap, mut total) = (0.0, 0.0, 0.0);
    for &id in b.primary.iter() {
        total += p.endpoints[id as usize].load.as_ref().map_or(0.0, |c| c.capacity);
        if let Some((r, c)) = raw(id) {
            load += r;
            cap += c;
        }
    }
    let overflow: Option<f64> = b.overflow.iter().map(|&id| raw(id).map(|r| r.0)).sum();
    crate::traffic::replay::Point {
        utilisation: (cap > 0.0).then(|| load / cap),
        overflow: overflow.filter(|_| total > 0.0).map(|o| o / total),
        fleet_share: Some(sig.burst_share(pid)),
        primary_up: Some(b.primary.iter().any(|&id| available(p, id, sig, 0))),
        overflow_up: Some(b.overflow.iter().any(|&id| available(p, id, sig, 0))),
    }
}

/// Runs `sc` against `snap` (which it changes: statuses, load samples, the burst lifecycle).
pub fn run(snap: &Snapshot, sc: &Scenario) -> Result<Outcome, String> {
    let mut world = World::new(snap, sc)?;
    let pid = world.pid;
    let p = &snap.policies;
    let profile = &p.profiles[pid as usize];
    let burst = profile.burst.as_ref();
    let interval = burst.map_or(Duration::from_secs(5), |b| b.interval);
    let t0 = Instant::now();
    let mut out = Outcome {
        profile: profile.name.to_string(),
        names: vec![String::new(); p.endpoints.len()],
        samples: Vec::new(),
        transitions: Vec::new(),
        events: Vec::new(),
        marks: Vec::new(),
        answers_to_down: 0,
        rule: burst.map(|b| b.rule),
        interval,
        primary: burst.map(|b| b.primary.iter().map(|&i| i as usize).collect()).unwrap_or_default(),
        capacity: burst
            .map(|b| {
                b.primary
                    .iter()
                    .filter_map(|&i| p.endpoints[i as usize].load.as_ref().map(|l| l.capacity))
                    .sum()
            })
            .unwrap_or(0.0),
        fleet_window: burst.and_then(|b| b.fleet.as_ref()).map(|f| f.window),
    };
    // Fleet mode: the shared data a Prometheus would hold, one point per tick, as every
    // instance would read it (one instance is simulated: the fleet's share is its own).
    let mut points: Vec<crate::traffic::replay::Point> = Vec::new();
    let (mut next_world, mut next_tick) = (WORLD_OFFSET, Duration::ZERO);
    while next_tick <= sc.duration {
        if next_world < next_tick {
            world.advance(snap, next_world, t0 + next_world);
            next_world += sc.step;
            continue;
        }
        let t = next_tick;
        next_tick += interval;
        let tick = match burst {
            Some(b) if b.fleet.is_some() => {
                points.push(shared_point(snap, pid, b, t0 + t));
                let f = b.fleet.as_ref().expect("fleet rule");
                let n = (f.window.as_secs_f64() / interval.as_secs_f64()).round() as usize + 1;
                let from = points.len().saturating_sub(n);
                let instant = std::time::UNIX_EPOCH + t;
                crate::control::bursts::decide(
                    &profile.name,
                    snap,
                    &points[from..],
                    instant,
                    t0 + t,
                )
            }
            Some(_) => crate::control::load::burst_tick(&profile.name, snap, t0 + t),
            None => None,
        };
        if let Some(tick) = &tick {
            if let Some((from, to)) = tick.step.transition {
                out.transitions.push((t, from, to));
            }
            if let Some(e) = tick.step.event {
                out.events.push((t, e));
            }
        }
        let detail = snap.signals.profile(pid).burst().clone();
        let machine = detail.as_ref().map(|d| &d.machine);
        out.samples.push(Sample {
            t,
            demand: world.demand,
            per_endpoint: world.per_endpoint.clone(),
            utilisation: detail.as_ref().and_then(|d| d.utilisation),
            state: snap.signals.burst_state(pid),
            share: snap.signals.burst_share(pid),
            held: machine.and_then(|m| m.held),
            estimated: machine.and_then(|m| m.demand),
            primary_down: tick.as_ref().is_some_and(|t| t.inputs.primary_down),
            fleet: detail.as_ref().and_then(|d| d.fleet.clone()),
        });
    }
    for x in &out.samples {
        for (id, v) in x.per_endpoint.iter().enumerate() {
            if *v > 0.0 && out.names[id].is_empty() {
                out.names[id] = p.endpoints[id].name.clone();
            }
        }
    }
    out.marks = std::mem::take(&mut world.marks);
    out.answers_to_down = world.answers_to_down;
    Ok(out)
}

/// How well a burst went: what an operator would ask of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorecard {
    /// Seconds the primary took more than its capacity (true load, not the smoothed
    /// reading), and more than `burst_at`, after the first spill.
    pub overload_s: f64,
    pub over_burst_at_s: f64,
    /// |true utilisation − target| while Bursting: mean and max.
    pub mean_error: Option<f64>,
    pub max_error: Option<f64>,
    /// Reversals: Warming → Idle and Draining → Bursting.
    pub flaps: usize,
    /// From the overflow being up after `on_warm` to the first spill (negative: it spilled
    /// onto an overflow not up yet, which the rule forbids).
    pub warm_lead_s: Option<f64>,
    /// From true demand last falling below `release_at` (after the last spill) to Idle.
    pub time_home_s: Option<f64>,
    /// Answers naming an endpoint that was down.
    pub answers_to_down: u64,
    pub transitions: usize,
}

/// The scorecard of a simulation.
pub fn scorecard(o: &Outcome) -> Scorecard {
    let dt = o.interval.as_secs_f64();
    let util = |x: &Sample| {
        let load: f64 = o.primary.iter().map(|&i| x.per_endpoint[i]).sum();
        if o.capacity > 0.0 { load / o.capacity } else { 0.0 }
    };
    let first_spill = o.samples.iter().position(|x| x.share > 0.0);
    let (mut overload_s, mut over_burst_at_s) = (0.0, 0.0);
    let rule = o.rule;
    if let (Some(first), Some(r)) = (first_spill, rule) {
        for x in &o.samples[first..] {
            let u = util(x);
            if u > 1.0 {
                overload_s += dt;
            }
            if u > r.burst_at {
                over_burst_at_s += dt;
            }
        }
    }
    let errors: Vec<f64> = o
        .samples
        .iter()
        .filter(|x| x.state == State::Bursting && !x.primary_down)
        .filter_map(|x| Some((util(x) - rule?.target).abs()))
        .collect();
    let flaps = o
        .transitions
        .iter()
        .filter(|(_, from, to)| {
            matches!((from, to), (State::Warming, State::Idle) | (State::Draining, State::Bursting))
        })
        .count();
    let warm_at = o.transitions.iter().find(|t| t.2 == State::Warming).map(|t| t.0);
    let warm_lead_s = first_spill.zip(warm_at).map(|(i, w)| {
        let spill = o.samples[i].t.as_secs_f64();
        let up = o
            .marks
            .iter()
            .filter(|m| m.2 == "overflow up")
            .map(|m| m.0)
            .find(|&t| t >= w)
            .unwrap_or(w);
        spill - up.as_secs_f64()
    });
    let last_spill = o.samples.iter().rposition(|x| x.share > 0.0);
    let time_home_s = last_spill.and_then(|last| {
        let r = rule?;
        let idle = o.transitions.iter().find(|t| t.2 == State::Idle && t.0 >= o.samples[last].t)?.0;
        // The last time demand was still at or above release_at before going home.
        let high = o
            .samples
            .iter()
            .rposition(|x| x.t <= idle && x.demand / o.capacity.max(1e-9) >= r.release_at)?;
        let fell = o.samples.get(high + 1)?.t;
        Some(idle.as_secs_f64() - fell.as_secs_f64())
    });
    Scorecard {
        overload_s,
        over_burst_at_s,
        mean_error: (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64),
        max_error: errors.iter().copied().reduce(f64::max),
        flaps,
        warm_lead_s,
        time_home_s,
        answers_to_down: o.answers_to_down,
        transitions: o.transitions.len(),
    }
}

/// Scorecards as a table, one row per scenario.
pub fn report(rows: &[(String, Scorecard)]) -> String {
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    let mut s = format!(
        "{:<22} {:>9} {:>10} {:>8} {:>8} {:>6} {:>9} {:>9} {:>8} {:>6}\n",
        "scenario",
        "over 1.0",
        "over burst",
        "mean err",
        "max err",
        "flaps",
        "warm lead",
        "time home",
        "to down",
        "trans"
    );
    for (name, c) in rows {
        let _ = writeln!(
            s,
            "{:<22} {:>8.0}s {:>9.0}s {:>8} {:>8} {:>6} {:>8}s {:>8}s {:>8} {:>6}",
            name,
            c.overload_s,
            c.over_burst_at_s,
            opt(c.mean_error, 3),
            opt(c.max_error, 3),
            c.flaps,
            opt(c.warm_lead_s, 0),
            opt(c.time_home_s, 0),
            c.answers_to_down,
            c.transitions
        );
    }
    s
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
    if let Some(w) = o.fleet_window {
        let _ = writeln!(
            s,
            "fleet mode: each tick is an aligned instant; it replays the lifecycle over the last {} of shared data (the primary's load, the fleet's share, consensus health; one instance simulated, so the fleet's share is its own)",
            humantime::format_duration(w)
        );
    }
    let every = (o.samples.len() / rows.max(1)).max(1);
    for x in o.samples.iter().step_by(every) {
        let _ = write!(s, "{:>8} {:>9.1}", clock(x.t), x.demand);
        for &i in &ids {
            let pct = if x.demand > 0.0 { 100.0 * x.per_endpoint[i] / x.demand } else { 0.0 };
            let _ = write!(s, " {:>7.1} {:>3.0}%", x.per_endpoint[i], pct);
        }
        let u = x.utilisation.map_or("-".to_string(), |u| format!("{u:.2}"));
        let _ = write!(s, " {u:>6} {:>6.2}  {}", x.share, x.state.as_str());
        if let Some(f) = &x.fleet {
            let up = |u: Option<bool>| match u {
                Some(true) => "up",
                Some(false) => "down",
                None => "-",
            };
            let _ = write!(
                s,
                "  [{} points, fleet share {}, primary {}, overflow {}]",
                f.points,
                f.fleet_share.map_or("-".to_string(), |v| format!("{v:.2}")),
                up(f.primary_up),
                up(f.overflow_up)
            );
        }
        s.push('\n');
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

/// A burst state's band on a chart.
pub fn band(st: State) -> crate::tools::chart::Band {
    match st {
        State::Warming => Some(("#fff3c4", "warming")),
        State::Bursting => Some(("#ffd9b3", "bursting")),
        State::Draining => Some(("#d6e9ff", "draining")),
        State::Idle => None,
    }
}

/// The outcome as an SVG chart (see [`crate::tools::chart`]).
pub fn svg(o: &Outcome) -> String {
    let ids: Vec<usize> = (0..o.names.len()).filter(|&i| !o.names[i].is_empty()).collect();
    let mut rates = vec![("demand".to_string(), o.samples.iter().map(|x| x.demand).collect())];
    for &i in &ids {
        rates.push((o.names[i].clone(), o.samples.iter().map(|x| x.per_endpoint[i]).collect()));
    }
    let mut events: Vec<(f64, String)> =
        o.marks.iter().map(|(t, who, what)| (t.as_secs_f64(), format!("{who} {what}"))).collect();
    events.extend(o.events.iter().map(|(t, e)| {
        (t.as_secs_f64(), if *e == Event::Warm { "on_warm" } else { "on_idle" }.to_string())
    }));
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    crate::tools::chart::Chart {
        title: format!("meridian simulate: {}", o.profile),
        times: o.samples.iter().map(|x| x.t.as_secs_f64()).collect(),
        clock_start: None,
        rates,
        rate_unit: "requests/s".into(),
        utilisation: o.samples.iter().map(|x| x.utilisation).collect(),
        share: o.samples.iter().map(|x| x.share).collect(),
        thresholds: o.rule.map(|r| (r.target, r.burst_at, r.release_at)),
        bands: o.samples.iter().map(|x| band(x.state)).collect(),
        events,
    }
    .svg()
}
