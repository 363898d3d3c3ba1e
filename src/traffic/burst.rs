//! The cloud-bursting lifecycle and its spill controller, as a pure state machine: the caller
//! passes the time and the measurements; nothing here reads a clock or does I/O, so the
//! lifecycle is tested (and simulated) in virtual time.
//!
//! Idle → (utilisation ≥ `warm_at` for `sustain`) → **Warming**: fire `on_warm` (start the public
//! side) → (utilisation ≥ `burst_at` and the overflow Online) → **Bursting**: each tick the
//! controller moves the spill share toward what holds the primary at `target`, by at most
//! `max_step`, never above `max_share` → (utilisation ≤ `release_at` for `sustain`, and
//! `cooldown` spent in the state) → **Draining**: the share falls by `max_step` per tick to 0;
//! once every resolver's cache has expired (`drain_wait`, the longest TTL) → **Idle**: fire
//! `on_idle` (stop the public side). Thresholds must hold for `sustain` and every state lasts at
//! least `cooldown`, so utilisation wandering inside the hysteresis band changes nothing.

use std::time::{Duration, Instant};

/// Where a profile is in the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    Idle = 0,
    Warming = 1,
    Bursting = 2,
    Draining = 3,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Warming => "Warming",
            State::Bursting => "Bursting",
            State::Draining => "Draining",
        }
    }

    pub fn from_u8(v: u8) -> State {
        match v {
            1 => State::Warming,
            2 => State::Bursting,
            3 => State::Draining,
            _ => State::Idle,
        }
    }
}

/// The thresholds and timings of a burst rule (validated: release_at < burst_at,
/// warm_at < burst_at, 0 < target < 1, 0 < max_step ≤ 1, 0 < max_share ≤ 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub warm_at: f64,
    pub burst_at: f64,
    pub release_at: f64,
    pub target: f64,
    pub sustain: Duration,
    pub cooldown: Duration,
    pub max_step: f64,
    pub max_share: f64,
    /// How long to wait at share 0 before `on_idle`: the longest TTL answers carried.
    pub drain_wait: Duration,
}

/// What the controller sees at one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inputs {
    /// The primary's smoothed utilisation, `None` when unknown (stale or never measured):
    /// unknown is never read as zero, and no decision is taken on it.
    pub utilisation: Option<f64>,
    /// Every primary endpoint is unavailable (Degraded, Disabled...).
    pub primary_down: bool,
    /// At least one overflow endpoint is available.
    pub overflow_online: bool,
}

/// A lifecycle event that fires a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Warm,
    Idle,
}

/// The outcome of one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub transition: Option<(State, State)>,
    pub event: Option<Event>,
}

/// One profile's lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub state: State,
    /// The share of answers spilled to the overflow, 0.0–`max_share`.
    pub share: f64,
    /// When the current state was entered.
    pub since: Instant,
    /// Since when the condition that leads out of the current state has held.
    holding: Option<Instant>,
    /// When the share reached 0 while draining.
    drained_at: Option<Instant>,
}

impl Machine {
    pub fn new(now: Instant) -> Machine {
        Machine { state: State::Idle, share: 0.0, since: now, holding: None, drained_at: None }
    }

    fn enter(&mut self, to: State, now: Instant) -> Option<(State, State)> {
        let from = self.state;
        self.state = to;
        self.since = now;
        self.holding = None;
        self.drained_at = None;
        Some((from, to))
    }

    /// True once `cond` has held continuously for `sustain` (tracked across ticks).
    fn held(&mut self, cond: bool, now: Instant, sustain: Duration) -> bool {
        if !cond {
            self.holding = None;
            return false;
        }
        let start = *self.holding.get_or_insert(now);
        now.duration_since(start) >= sustain
    }

    /// Advances the lifecycle by one tick.
    pub fn step(&mut self, now: Instant, inp: Inputs, rule: &Rule) -> Step {
        let mut step = Step { transition: None, event: None };
        let cooled = now.duration_since(self.since) >= rule.cooldown;
        match self.state {
            State::Idle => {
                // A primary that is down needs the public side now, whatever the load.
                let warm = inp.primary_down
                    || self.held(
                        inp.utilisation.is_some_and(|u| u >= rule.warm_at),
                        now,
                        rule.sustain,
                    );
                if warm {
                    step.transition = self.enter(State::Warming, now);
                    step.event = Some(Event::Warm);
                }
            }
            State::Warming => {
                let hot = inp.primary_down || inp.utilisation.is_some_and(|u| u >= rule.burst_at);
                if hot && inp.overflow_online {
                    step.transition = self.enter(State::Bursting, now);
                } else if !inp.primary_down
                    && self.held(
                        inp.utilisation.is_some_and(|u| u <= rule.release_at),
                        now,
                        rule.sustain,
                    )
                    && cooled
                {
                    // Demand fell before the burst was needed: stop the public side again.
                    step.transition = self.enter(State::Idle, now);
                    step.event = Some(Event::Idle);
                }
            }
            State::Bursting => {
                // While the primary is down its measured load says nothing about demand (it
                // receives none): hold the share, so that its return is not a stampede.
                if let (Some(u), false) = (inp.utilisation, inp.primary_down) {
                    self.share = control(self.share, u, rule);
                }
                let release = !inp.primary_down
                    && self.held(
                        inp.utilisation.is_some_and(|u| u <= rule.release_at),
                        now,
                        rule.sustain,
                    );
                if release && cooled {
                    step.transition = self.enter(State::Draining, now);
                }
            }
            State::Draining => {
                let again = inp.primary_down || inp.utilisation.is_some_and(|u| u >= rule.burst_at);
                if again && inp.overflow_online && cooled {
                    step.transition = self.enter(State::Bursting, now);
                    return step;
                }
                self.share = (self.share - rule.max_step).max(0.0);
                if self.share == 0.0 {
                    let at = *self.drained_at.get_or_insert(now);
                    if now.duration_since(at) >= rule.drain_wait && !inp.primary_down {
                        step.transition = self.enter(State::Idle, now);
                        step.event = Some(Event::Idle);
                    }
                }
            }
        }
        step
    }

    /// Whether answers should carry the profile's transition TTL (a change is under way).
    pub fn in_transition(&self) -> bool {
        self.state != State::Idle
    }
}

/// The spill share for the next tick. With share `s` the primary sees `1 - s` of the demand and
/// measures utilisation `u`, so the whole demand is `u / (1 - s)` and the share that would put
/// the primary at `target` is `1 - target (1 - s) / u`. The share moves half of the way there
/// per tick, and by at most `max_step`: a change reaches traffic only as resolvers' caches
/// expire and the load's smoothing catches up, so going all the way at once overshoots and
/// oscillates (`meridian simulate` shows it). Unlike a fixed-gain controller it stays stable
/// at any demand.
pub fn control(share: f64, u: f64, rule: &Rule) -> f64 {
    let want = if u <= 0.0 { 0.0 } else { 1.0 - rule.target * (1.0 - share) / u };
    let want = want.clamp(0.0, rule.max_share);
    let next = share + (DAMPING * (want - share)).clamp(-rule.max_step, rule.max_step);
    // Halving forever never arrives: snap once within a thousandth.
    let next = if (want - next).abs() < 1e-3 { want } else { next };
    next.clamp(0.0, rule.max_share)
}

/// The fraction of the way to the computed share taken per tick.
const DAMPING: f64 = 0.5;

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule {
            warm_at: 0.6,
            burst_at: 0.8,
            release_at: 0.5,
            target: 0.75,
            sustain: Duration::from_secs(30),
            cooldown: Duration::from_secs(120),
            max_step: 0.1,
            max_share: 0.9,
            drain_wait: Duration::from_secs(60),
        }
    }

    const TICK: Duration = Duration::from_secs(5);

    /// Transitions with their time and event.
    type Log = Vec<(u64, State, Option<Event>)>;
    /// (time, primary utilisation, share) at each tick.
    type Trace = Vec<(u64, f64, f64)>;

    /// Plays `demand` (relative to the primary's capacity, as a function of seconds) for
    /// `secs`, the primary seeing `(1 - share)` of it; returns every transition and event with
    /// its time, the machine, and the trace.
    fn play(
        secs: u64,
        overflow_online: bool,
        demand: impl Fn(u64) -> f64,
    ) -> (Log, Machine, Trace) {
        let t0 = Instant::now();
        let mut m = Machine::new(t0);
        let mut log = Vec::new();
        let mut trace = Vec::new();
        let r = rule();
        for k in 0..=secs / TICK.as_secs() {
            let t = k * TICK.as_secs();
            let u = demand(t) * (1.0 - m.share);
            trace.push((t, u, m.share));
            let step = m.step(
                t0 + Duration::from_secs(t),
                Inputs { utilisation: Some(u), primary_down: false, overflow_online },
                &r,
            );
            if let Some((_, to)) = step.transition {
                log.push((t, to, step.event));
            }
        }
        (log, m, trace)
    }

    #[test]
    fn full_lifecycle_with_one_event_each() {
        // Demand: 0.4 until t=100, 1.5 until t=1000, then 0.3.
        let (log, m, _) = play(2000, true, |t| {
            if t < 100 {
                0.4
            } else if t < 1000 {
                1.5
            } else {
                0.3
            }
        });
        let states: Vec<State> = log.iter().map(|x| x.1).collect();
        assert_eq!(
            states,
            [State::Warming, State::Bursting, State::Draining, State::Idle],
            "{log:?}"
        );
        // on_warm after `sustain` above warm_at; on_idle once, at the end.
        assert_eq!(log[0], (130, State::Warming, Some(Event::Warm)));
        assert_eq!(log.iter().filter(|x| x.2 == Some(Event::Idle)).count(), 1);
        assert_eq!(log[3].2, Some(Event::Idle));
        assert_eq!(m.share, 0.0);
        // Draining began only after release held for `sustain` once demand fell.
        assert!(log[2].0 >= 1000 + 30, "{log:?}");
    }

    #[test]
    fn no_spill_until_the_overflow_is_online() {
        let (log, _, _) = play(600, false, |_| 1.5);
        assert_eq!(
            log.iter().map(|x| x.1).collect::<Vec<_>>(),
            [State::Warming],
            "stays Warming: {log:?}"
        );
    }

    #[test]
    fn no_flapping_inside_the_hysteresis_band() {
        // Utilisation wandering between release_at and warm_at for a day: nothing happens.
        let (log, ..) = play(86_400, true, |t| 0.55 + 0.04 * ((t as f64) / 37.0).sin());
        assert!(log.is_empty(), "{log:?}");
        // Spikes above burst_at shorter than `sustain`: nothing happens either.
        let (log, ..) = play(86_400, true, |t| if t % 300 < 20 { 1.2 } else { 0.4 });
        assert!(log.is_empty(), "{log:?}");
        // Once bursting, demand oscillating around the band (the primary held near target by
        // the controller) causes no state change: one Warming and one Bursting, then quiet.
        let (log, ..) =
            play(
                86_400,
                true,
                |t| if t < 60 { 1.2 } else { 1.1 + 0.3 * ((t as f64) / 600.0).sin() },
            );
        assert_eq!(
            log.iter().map(|x| x.1).collect::<Vec<_>>(),
            [State::Warming, State::Bursting],
            "{log:?}"
        );
    }

    #[test]
    fn controller_settles_near_target_for_step_and_ramp() {
        // Step to 1.6x capacity: the primary settles within ±0.02 of target (0.75), and the
        // share never moves by more than max_step per tick.
        let (_, m, trace) = play(1800, true, |t| if t < 60 { 0.7 } else { 1.6 });
        let settled: Vec<f64> = trace.iter().filter(|x| x.0 > 600).map(|x| x.1).collect();
        assert!(settled.iter().all(|u| (u - 0.75).abs() < 0.02), "{settled:?}");
        assert!((m.share - (1.0 - 0.75 / 1.6)).abs() < 0.02, "share {}", m.share);
        assert!(trace.windows(2).all(|w| (w[1].2 - w[0].2).abs() <= 0.1 + 1e-9));
        // A ramp from 0.9 to 2.5x over an hour: tracking error stays within ±0.05.
        let (_, _, trace) = play(3600, true, |t| 0.9 + 1.6 * (t as f64 / 3600.0));
        let tracked: Vec<f64> = trace.iter().filter(|x| x.0 > 600).map(|x| x.1).collect();
        assert!(tracked.iter().all(|u| (u - 0.75).abs() < 0.05), "{tracked:?}");
        // Beyond what max_share allows, the share stops at max_share.
        let (_, m, _) = play(1800, true, |_| 20.0);
        assert_eq!(m.share, 0.9);
    }

    #[test]
    fn unknown_utilisation_changes_nothing() {
        let t0 = Instant::now();
        let mut m = Machine::new(t0);
        let r = rule();
        for k in 0..1000 {
            let s = m.step(
                t0 + TICK * k,
                Inputs { utilisation: None, primary_down: false, overflow_online: true },
                &r,
            );
            assert_eq!(s.transition, None);
        }
    }

    #[test]
    fn a_down_primary_warms_at_once() {
        let t0 = Instant::now();
        let mut m = Machine::new(t0);
        let r = rule();
        let down = Inputs { utilisation: Some(0.1), primary_down: true, overflow_online: false };
        assert_eq!(m.step(t0, down, &r).event, Some(Event::Warm));
        let down_ready = Inputs { overflow_online: true, ..down };
        assert_eq!(
            m.step(t0 + TICK, down_ready, &r).transition,
            Some((State::Warming, State::Bursting))
        );
        // It stays while the primary is down, however low its (stale) load reads, and the
        // share it had is held for the primary's return.
        m.share = 0.4;
        for k in 2..200 {
            assert_eq!(m.step(t0 + TICK * k, down_ready, &r).transition, None);
        }
        assert_eq!(m.share, 0.4);
    }
}
