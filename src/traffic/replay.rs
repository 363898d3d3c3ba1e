//! A fleet's burst decision as a pure function of shared, time-aligned data.
//!
//! Several Meridian instances serve one domain; a resolver may ask any of them. For all of
//! them to spill the same clients, their burst state and share must not depend on when each
//! started or on what it alone saw. In fleet mode each instance, at every aligned instant
//! `t = k × interval` (wall-clock time), fetches the same series from the shared Prometheus
//! over the window `[t - window, t]` at the same step, and replays the burst [`Machine`] from
//! Idle over it. Same data, same function: the same state and share, on every instance, at
//! every tick, and an instance that (re)starts agrees from its first tick.
//!
//! **Why the replay does not forget a long burst.** The primary's utilisation is not an input
//! the burst leaves alone: while answers spill, the primary sees only part of the demand. A
//! replay starting Idle over a window that lies wholly inside a burst would see a primary held
//! near `target`, below `burst_at`, and never burst. So the replay is fed the demand instead:
//! the observed utilisation over the share of traffic the primary was really sent (the fleet's
//! published share, `meridian_burst_share`, smoothed as the machine smooths its own), times the
//! share the replay itself would have left it (`1 - seen` of the replay). Once the replay's
//! share has caught up with the fleet's, the two factors cancel and it sees exactly what a
//! machine running all along sees. A window a few times `sustain + cooldown` plus the ramp
//! is enough for that (validation asks for at least 2 × (2 × sustain + 2 × cooldown) + the
//! longest TTL).
//!
//! **Health** comes from the fleet too: an endpoint counts as up at an instant when at least
//! half of the instances reporting `meridian_endpoint_available` for it say 1 (Traffic
//! Manager's "fewer than half up means down"), so one instance's broken probe path does not
//! move the fleet. A gap in an endpoint's reports takes the nearest earlier report (or the
//! first); only an endpoint with no report in the whole window uses this instance's own view.

use crate::traffic::burst::{Event, Inputs, Machine, Rule, State, Step, ewma};
use std::time::{Duration, Instant};

/// What the shared data says at one aligned instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    /// The primary group's load over its capacity (the endpoints that reported), raw.
    pub utilisation: Option<f64>,
    /// The overflow group's load over the primary's capacity, when every overflow endpoint
    /// has a load source and all reported.
    pub overflow: Option<f64>,
    /// The share the fleet published (the largest, should instances still disagree).
    pub fleet_share: Option<f64>,
    /// Consensus health: any primary endpoint up; any overflow endpoint up.
    pub primary_up: Option<bool>,
    pub overflow_up: Option<bool>,
}

/// The outcome of a replay.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The machine after the last instant: its state and share are the decision.
    pub machine: Machine,
    /// Transitions during the window, by point index.
    pub transitions: Vec<(usize, State, State)>,
    /// The inputs fed at the last instant.
    pub last: Inputs,
    /// The primary's smoothed utilisation as observed at the last instant.
    pub observed: Option<f64>,
}

/// What publishing `to` after `from` amounts to, as a step: the transition, and the webhook
/// the lifecycle calls for (leaving Idle starts the public side, reaching Idle stops it).
pub fn step_between(from: State, to: State) -> Step {
    let event = match (from, to) {
        (State::Idle, s) if s != State::Idle => Some(Event::Warm),
        (s, State::Idle) if s != State::Idle => Some(Event::Idle),
        _ => None,
    };
    Step { transition: (from != to).then_some((from, to)), event }
}

/// Replays the burst machine from Idle over `points` (one per `interval`, the last at `end`).
/// `local_up` is this instance's own (primary, overflow) availability now, for instants with
/// no consensus report. `with_overflow_load`: the overflow endpoints have load sources, so
/// the demand is primary plus overflow load.
pub fn replay(
    rule: &Rule,
    interval: Duration,
    points: &[Point],
    end: Instant,
    local_up: (bool, bool),
) -> Replay {
    let n = points.len() as u32;
    let base = end.checked_sub(interval * n.saturating_sub(1)).unwrap_or(end);
    let mut m = Machine::new();
    let mut transitions = Vec::new();
    let (mut util, mut over, mut fleet_seen) = (None, None, None);
    let mut last = Inputs::default();
    let mut observed = None;
    for (j, p) in points.iter().enumerate() {
        let now = base + interval * j as u32;
        let primary_up = p.primary_up.unwrap_or(local_up.0);
        let overflow_up = p.overflow_up.unwrap_or(local_up.1);
        // Smoothed as the load sources smooth a polled value, sample by sample.
        let smooth = |prev: Option<(f64, Instant)>, x: Option<f64>| match x {
            Some(x) => Some((ewma(prev, x, now, rule.half_life), now)),
            None => prev,
        };
        util = smooth(util, p.utilisation);
        over = smooth(over, p.overflow);
        // What the primary was really sent: all of it while it was down, else the fleet's
        // share (this replay's own where the fleet published none).
        let held = if primary_up { p.fleet_share.unwrap_or(m.share) } else { 1.0 };
        fleet_seen = Some((ewma(fleet_seen, held, now, rule.half_life), now));
        let seen_fleet = fleet_seen.map_or(0.0, |s| s.0);
        let seen_replay = m.seen_next(now, rule, !primary_up);
        let u = p.utilisation.and(util.map(|u| u.0));
        observed = u;
        let demand = match (u, p.overflow.and(over.map(|o| o.0))) {
            (Some(u), Some(o)) => Some(u + o),
            (Some(u), None) if 1.0 - seen_fleet >= 0.05 => Some(u / (1.0 - seen_fleet)),
            _ => None,
        };
        let inputs = Inputs {
            utilisation: demand.map(|d| d * (1.0 - seen_replay)),
            overflow_demand: p.overflow.and(demand).map(|d| d * seen_replay),
            primary_down: !primary_up,
            overflow_online: overflow_up,
            answers: (0, 0),
        };
        let step = m.step(now, inputs, rule);
        if let Some((from, to)) = step.transition {
            transitions.push((j, from, to));
        }
        last = inputs;
    }
    Replay { machine: m, transitions, last, observed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule {
            warm_at: 0.6,
            burst_at: 0.8,
            release_at: 0.4,
            target: 0.7,
            sustain: Duration::from_secs(10),
            cooldown: Duration::from_secs(20),
            max_step: 0.2,
            max_share: 0.8,
            warm_lead: None,
            idle_ttl: Duration::from_secs(30),
            ttl: Duration::from_secs(5),
            half_life: Duration::from_secs(4),
            settle: Duration::from_secs(6),
        }
    }

    const STEP: Duration = Duration::from_secs(5);

    /// A point with everything up: the primary's utilisation and the fleet's share.
    fn healthy(utilisation: f64, share: f64) -> Point {
        Point {
            utilisation: Some(utilisation),
            fleet_share: Some(share),
            primary_up: Some(true),
            overflow_up: Some(true),
            overflow: None,
        }
    }

    /// A fleet running the replay every tick over a closed loop: demand (× capacity) as a
    /// function of the tick; the primary's utilisation at tick k is the demand times what the
    /// fleet's decision at tick k-1 left it. Returns (state, share) per tick, deciding at each
    /// tick from the last `window` points only.
    fn run_fleet(demand: impl Fn(usize) -> f64, ticks: usize, window: usize) -> Vec<(State, f64)> {
        let t0 = Instant::now();
        let mut points: Vec<Point> = Vec::new();
        let mut out: Vec<(State, f64)> = Vec::new();
        for k in 0..ticks {
            let share = out.last().map_or(0.0, |d| d.1);
            points.push(healthy(demand(k) * (1.0 - share), share));
            let from = points.len().saturating_sub(window);
            let r = replay(&rule(), STEP, &points[from..], t0 + STEP * k as u32, (true, true));
            out.push((r.machine.state, r.machine.share));
        }
        out
    }

    #[test]
    fn a_long_burst_is_held_not_forgotten() {
        // Demand 1.5 × capacity for 100 ticks (500 s), far longer than the 24-point window.
        let out = run_fleet(|k| if (5..105).contains(&k) { 1.5 } else { 0.3 }, 160, 24);
        let bursting: Vec<usize> = (0..160).filter(|&k| out[k].0 == State::Bursting).collect();
        let first = bursting[0];
        // Once bursting, the fleet stays bursting as long as the demand lasts...
        for (k, d) in out.iter().enumerate().take(105).skip(first) {
            assert_eq!(d.0, State::Bursting, "tick {k}: {:?}", &out[first..106]);
        }
        // ...holding the share near what keeps the primary at target: 1 - 0.7 / 1.5.
        let want = 1.0 - 0.7 / 1.5;
        for (k, d) in out.iter().enumerate().take(105).skip(first + 20) {
            assert!((d.1 - want).abs() < 0.06, "tick {k}: share {}", d.1);
        }
        // And it comes home afterwards.
        assert_eq!(out[159], (State::Idle, 0.0), "{:?}", &out[100..]);
    }

    #[test]
    fn instances_with_the_same_window_agree_whenever_they_started() {
        // Two instances: one has decided all along, one starts at tick 60. Each decides from
        // the same shared series, so their decisions match at every tick both are up.
        let demand = |k: usize| if (10..90).contains(&k) { 1.4 } else { 0.2 };
        let t0 = Instant::now();
        let fleet = run_fleet(demand, 140, 24);
        let mut points = Vec::new();
        for (k, _) in fleet.iter().enumerate() {
            let share = if k == 0 { 0.0 } else { fleet[k - 1].1 };
            points.push(healthy(demand(k) * (1.0 - share), share));
            if k >= 60 {
                // The late instance's clock differs (another Instant base): only relative
                // time counts.
                let end = t0 + Duration::from_secs(1000) + STEP * k as u32;
                let r = replay(&rule(), STEP, &points[k + 1 - 24..=k], end, (true, true));
                assert_eq!((r.machine.state, r.machine.share), fleet[k], "tick {k}");
            }
        }
    }

    #[test]
    fn consensus_health_overrides_local_and_gaps_use_it() {
        let p = Point { primary_up: Some(false), ..healthy(0.2, 0.0) };
        // The fleet says the primary is down: a down primary warms at once.
        let r = replay(&rule(), STEP, &[p], Instant::now(), (true, true));
        assert_eq!(r.machine.state, State::Warming);
        assert!(r.last.primary_down);
        // No report: this instance's own view decides.
        let gap = Point { primary_up: None, ..p };
        let r = replay(&rule(), STEP, &[gap], Instant::now(), (true, true));
        assert_eq!(r.machine.state, State::Idle);
    }
}
