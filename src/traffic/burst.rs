//! The cloud-bursting lifecycle and its spill controller, as a pure state machine: the caller
//! passes the time and the measurements; nothing here reads a clock or does I/O, so the
//! lifecycle is tested (and simulated) in virtual time.
//!
//! Idle → (utilisation ≥ `warm_at` for `sustain`, or rising fast enough to reach `burst_at`
//! within `warm_lead`, for `sustain`) → **Warming**: fire `on_warm` (start the public side) → (utilisation
//! ≥ `burst_at` for `sustain`, and the overflow Online) → **Bursting**: the controller moves
//! the spill share toward what holds the primary at `target` → (utilisation ≤ `release_at`
//! for `sustain`) → **Draining**: the share steps down as the estimated demand allows → (share
//! 0 for the longest TTL) → **Idle**: fire `on_idle` (stop the public side).
//!
//! Timing rules, without exception but the safety exits below: thresholds must hold for
//! `sustain`; every state entered by a transition lasts at least `cooldown` (the Idle a server
//! starts in counts as cooled). Unknown utilisation (stale or never measured) holds every
//! condition where it is. Safety exits: a primary that is down (every primary endpoint
//! unavailable) warms at once from Idle and bursts at once from Warming or Draining once the
//! overflow is Online; a primary over its capacity (utilisation ≥ 1) bursts at once from
//! Warming once the overflow is Online.
//!
//! **The control law.** The controller estimates total demand `D`, in units of the primary's
//! capacity, and wants the share `1 - target / D` (clamped to [0, `max_share`]):
//! - with load sources on the overflow endpoints too, `D` is the primary's utilisation plus
//!   the overflow's load over the primary's capacity;
//! - otherwise `D = u / (1 - s_seen)`, where `s_seen` is the share the primary's reading
//!   reflects: the share resolvers hold (answers handed out whose TTL has not run out, counted
//!   per endpoint) passed through the same smoothing as the load.
//!
//! It assumes resolvers of similar size that ask again when their TTL runs out. Raising the
//! share is safe to do at once (too much spill costs money, too little overloads the
//! primary), so it moves up every tick. Lowering it is not: it only moves down once the last
//! change could show in the reading (the TTL in force plus the load's half-life and sampling
//! interval: the *dead time*), and never while the estimate is unreliable (the primary
//! receives under 5 % of the traffic). After the primary's return from an outage its readings
//! are ignored for the dead time: the share only rises, toward what the demand estimated
//! before the outage wants. Every move is at most `max_step`, and a change under 0.01 is not
//! made.

use std::collections::VecDeque;
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

/// The thresholds and timings of a burst rule (validated: release_at < target ≤ burst_at,
/// warm_at < burst_at, 0 < max_step ≤ 1, 0 < max_share ≤ 1).
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
    /// Warm early when utilisation, extrapolated over the last `sustain`, reaches `burst_at`
    /// within this lead (the overflow's start-up time).
    pub warm_lead: Option<Duration>,
    /// The TTL answers carry while nothing is under way (the profile's TTL)...
    pub idle_ttl: Duration,
    /// ...and while a burst is (`transition_ttl`, else the profile's TTL).
    pub ttl: Duration,
    /// The primary load's smoothing half-life.
    pub half_life: Duration,
    /// How long after its traffic changes the primary's reading shows it, beyond the TTL: the
    /// half-life plus the load source's sampling interval.
    pub settle: Duration,
}

impl Rule {
    /// How long to wait at share 0 before `on_idle`: the longest TTL answers carried.
    pub fn drain_wait(&self) -> Duration {
        self.idle_ttl.max(self.ttl)
    }
}

/// What the controller sees at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Inputs {
    /// The primary's smoothed utilisation, `None` when unknown (stale or never measured):
    /// unknown is never read as zero, and no decision is taken on it.
    pub utilisation: Option<f64>,
    /// The overflow endpoints' smoothed load over the primary's capacity, when every overflow
    /// endpoint has a fresh load reading.
    pub overflow_demand: Option<f64>,
    /// Every primary endpoint is unavailable (Degraded, Disabled...).
    pub primary_down: bool,
    /// At least one overflow endpoint is available.
    pub overflow_online: bool,
    /// Answers handed out so far (counters that only grow): to primary endpoints, to overflow
    /// endpoints. They tell which share resolvers hold.
    pub answers: (u64, u64),
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

/// Answers handed out during one tick, and the TTL they carried.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    at: Instant,
    ttl: Duration,
    primary: u64,
    overflow: u64,
}

/// One profile's lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub state: State,
    /// The share of answers spilled to the overflow, 0.0–`max_share`.
    pub share: f64,
    /// When the current state was entered; `None` for the Idle a server starts in.
    pub since: Option<Instant>,
    /// Estimated total demand, in units of the primary's capacity.
    pub demand: Option<f64>,
    /// The share resolvers hold now (from the answers whose TTL has not run out).
    pub held: Option<f64>,
    /// The share the primary's smoothed reading reflects.
    pub seen: Option<f64>,
    /// No share decrease before this: the last change (or the primary's return) cannot show
    /// in the reading yet.
    pub dead_until: Option<Instant>,
    /// Why the share last moved, or why it holds.
    pub why: String,
    above_warm: Option<Instant>,
    above_burst: Option<Instant>,
    below_release: Option<Instant>,
    /// Since when the trend has pointed at `burst_at` within `warm_lead`.
    trend_up: Option<Instant>,
    /// Utilisation readings over the last `sustain`, for the trend.
    readings: VecDeque<(Instant, f64)>,
    buckets: VecDeque<Bucket>,
    counted: Option<(u64, u64)>,
    seen_at: Option<Instant>,
    was_down: bool,
    /// After the primary's return, its reading is not taken as a measure of demand until
    /// then (caches turning over, smoothing catching up).
    blind_until: Option<Instant>,
    /// The demand estimated just before the primary went down: what to assume until its
    /// reading means something again.
    pre_outage: Option<f64>,
    /// The last demand estimate there was (a failing primary often stops reporting before
    /// its probes call it down).
    last_demand: Option<f64>,
    /// When the share reached 0 while draining.
    drained_at: Option<Instant>,
}

/// Share changes smaller than this are not made: they would churn caches for nothing.
const DEADBAND: f64 = 0.01;
/// Below this share of the traffic on the primary, its reading says too little about demand.
const MIN_PRIMARY_SHARE: f64 = 0.05;

/// Exponential smoothing with a half-life: after `half_life` of silence a new sample counts
/// for half. Irregular sample times are fine. (The load sources smooth with this too.)
pub fn ewma(prev: Option<(f64, Instant)>, sample: f64, now: Instant, half_life: Duration) -> f64 {
    match prev {
        None => sample,
        Some((v, at)) => {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            let alpha = 1.0 - 0.5f64.powf(dt / half_life.as_secs_f64().max(1e-9));
            v + alpha * (sample - v)
        }
    }
}

fn since_held(at: Option<Instant>, now: Instant, sustain: Duration) -> bool {
    at.is_some_and(|t| now.saturating_duration_since(t) >= sustain)
}

impl Default for Machine {
    fn default() -> Machine {
        Machine {
            state: State::Idle,
            share: 0.0,
            since: None,
            demand: None,
            held: None,
            seen: None,
            dead_until: None,
            why: String::new(),
            above_warm: None,
            above_burst: None,
            below_release: None,
            trend_up: None,
            readings: VecDeque::new(),
            buckets: VecDeque::new(),
            counted: None,
            seen_at: None,
            was_down: false,
            blind_until: None,
            pre_outage: None,
            last_demand: None,
            drained_at: None,
        }
    }
}

impl Machine {
    /// A server's first lifecycle: Idle, and no cooldown to spend.
    pub fn new() -> Machine {
        Machine::default()
    }

    fn enter(&mut self, to: State, now: Instant) -> Option<(State, State)> {
        let from = self.state;
        self.state = to;
        self.since = Some(now);
        self.drained_at = None;
        Some((from, to))
    }

    fn cooled(&self, now: Instant, rule: &Rule) -> bool {
        self.since.is_none_or(|t| now.saturating_duration_since(t) >= rule.cooldown)
    }

    /// The TTL of the answers handed out now.
    fn ttl_now(&self, rule: &Rule) -> Duration {
        if self.state == State::Idle { rule.idle_ttl } else { rule.ttl }
    }

    /// Updates the threshold holds and the trend window from this tick's reading.
    fn track(&mut self, u: Option<f64>, now: Instant, rule: &Rule) {
        let mark = |at: &mut Option<Instant>, cond: bool| {
            *at = if cond { Some(at.unwrap_or(now)) } else { None };
        };
        mark(&mut self.above_warm, u.is_some_and(|u| u >= rule.warm_at));
        mark(&mut self.above_burst, u.is_some_and(|u| u >= rule.burst_at));
        mark(&mut self.below_release, u.is_some_and(|u| u <= rule.release_at));
        match u {
            None => self.readings.clear(),
            Some(u) => {
                self.readings.push_back((now, u));
                // Keep one reading at least `sustain` old, so the slope spans the window.
                while self.readings.len() > 2
                    && now.saturating_duration_since(self.readings[1].0) >= rule.sustain
                {
                    self.readings.pop_front();
                }
            }
        }
        // The trend is a threshold like the others: it must hold for `sustain`, so that a
        // spike shorter than that warms nothing.
        let trending = self.trending_up(now, rule);
        mark(&mut self.trend_up, trending);
    }

    /// Rising fast enough to reach `burst_at` within `warm_lead`, judged over `sustain`.
    fn trending_up(&self, now: Instant, rule: &Rule) -> bool {
        let (Some(lead), Some(&(t0, u0)), Some(&(_, u))) =
            (rule.warm_lead, self.readings.front(), self.readings.back())
        else {
            return false;
        };
        let span = now.saturating_duration_since(t0).as_secs_f64();
        if span < rule.sustain.as_secs_f64().max(1e-9) {
            return false;
        }
        let slope = (u - u0) / span;
        slope > 0.0 && u + slope * lead.as_secs_f64() >= rule.burst_at
    }

    /// Counts this tick's answers and works out the share resolvers hold and the share the
    /// primary's reading reflects.
    fn observe(&mut self, inp: &Inputs, now: Instant, rule: &Rule) {
        let ttl = self.ttl_now(rule);
        if let Some((p0, o0)) = self.counted {
            let (p, o) = (inp.answers.0.saturating_sub(p0), inp.answers.1.saturating_sub(o0));
            self.buckets.push_back(Bucket { at: now, ttl, primary: p, overflow: o });
        }
        self.counted = Some(inp.answers);
        while self.buckets.front().is_some_and(|b| b.at + b.ttl < now) {
            self.buckets.pop_front();
        }
        let (p, o) = self.buckets.iter().fold((0, 0), |(p, o), b| (p + b.primary, o + b.overflow));
        self.held = if p + o > 0 { Some(o as f64 / (p + o) as f64) } else { None };
        // While the primary is down everything resolvers get is the overflow, whatever the
        // counters lag behind.
        let held = if inp.primary_down { 1.0 } else { self.held.unwrap_or(self.share) };
        let seen = ewma(self.seen.zip(self.seen_at), held, now, rule.half_life);
        self.seen = Some(seen);
        self.seen_at = Some(now);
        self.demand = match (inp.utilisation, inp.overflow_demand) {
            (Some(u), Some(o)) => Some(u + o),
            (Some(u), None) if 1.0 - seen >= MIN_PRIMARY_SHARE => Some(u / (1.0 - seen)),
            _ => None,
        };
        if !inp.primary_down && self.demand.is_some() {
            self.last_demand = self.demand;
        }
    }

    /// One controller move: up at once, down only past the dead time.
    fn control(&mut self, now: Instant, rule: &Rule, may_raise: bool) {
        if let Some(until) = self.blind_until.filter(|&t| now < t) {
            // The primary is back but its reading says nothing yet: assume the demand from
            // before its outage, and only raise toward what it wants (never lower).
            let left = until.saturating_duration_since(now).as_secs_f64().ceil();
            let before = self.pre_outage.filter(|&d| d > 0.0);
            let want = before.map(|d| (1.0 - rule.target / d).clamp(0.0, rule.max_share));
            match (before, want) {
                (Some(d), Some(want)) if may_raise && want > self.share + DEADBAND => {
                    let next = self.share + (want - self.share).min(rule.max_step);
                    self.share = next.min(rule.max_share);
                    self.dead_until = Some(now + self.ttl_now(rule) + rule.settle);
                    self.why = format!(
                        "raised: the primary is back; the demand before its outage ({d:.2} × capacity) wants share {want:.2}"
                    );
                }
                _ => {
                    self.why = format!(
                        "holding: the primary is back; its load shows the traffic it is sent in {left:.0}s"
                    );
                }
            }
            return;
        }
        let Some(d) = self.demand else {
            self.why = "holding: demand unknown (no fresh reading, or the primary gets under 5 % of the traffic)".into();
            return;
        };
        let want = if d <= 0.0 { 0.0 } else { (1.0 - rule.target / d).clamp(0.0, rule.max_share) };
        // (A small change is skipped, except the last one home: 0 must be reached.)
        if (want - self.share).abs() < DEADBAND && !(want == 0.0 && self.share > 0.0) {
            self.why = format!("steady: estimated demand {d:.2} × capacity wants share {want:.2}");
            return;
        }
        if want > self.share && !may_raise {
            self.why =
                format!("holding: demand {d:.2} × capacity; draining does not raise the share");
            return;
        }
        if want < self.share
            && let Some(until) = self.dead_until.filter(|&t| now < t)
        {
            let left = until.saturating_duration_since(now);
            self.why = format!(
                "holding: demand {d:.2} × capacity wants share {want:.2}, but the last change shows in the reading only in {:.0}s",
                left.as_secs_f64().ceil()
            );
            return;
        }
        let next = self.share + (want - self.share).clamp(-rule.max_step, rule.max_step);
        self.why = format!(
            "{}: estimated demand {d:.2} × capacity wants share {want:.2}{}",
            if next > self.share { "raised" } else { "lowered" },
            if (next - want).abs() > 1e-9 { " (a step of at most max_step)" } else { "" }
        );
        self.share = next.clamp(0.0, rule.max_share);
        self.dead_until = Some(now + self.ttl_now(rule) + rule.settle);
    }

    /// Advances the lifecycle by one tick.
    pub fn step(&mut self, now: Instant, inp: Inputs, rule: &Rule) -> Step {
        let mut step = Step { transition: None, event: None };
        let down = inp.primary_down;
        if !self.was_down && down {
            self.pre_outage = self.last_demand;
        }
        if self.was_down && !down {
            // Its reading shows the traffic it is sent only once caches turned over and the
            // smoothing caught up: until then a low reading is not headroom.
            let until = now + rule.ttl + rule.settle;
            self.dead_until = Some(until);
            self.blind_until = Some(until);
            self.why = "holding: the primary is back; waiting for its load to show".into();
        }
        self.was_down = down;
        // A down primary's reading, or one from just after its return, says nothing about
        // demand: no threshold counts it.
        let blind = down || self.blind_until.is_some_and(|t| now < t);
        self.track(inp.utilisation.filter(|_| !blind), now, rule);
        self.observe(&inp, now, rule);
        let cooled = self.cooled(now, rule);
        let sustained = |at: Option<Instant>| since_held(at, now, rule.sustain);
        match self.state {
            State::Idle => {
                let warm =
                    down || (cooled && (sustained(self.above_warm) || sustained(self.trend_up)));
                if warm {
                    step.transition = self.enter(State::Warming, now);
                    step.event = Some(Event::Warm);
                }
            }
            State::Warming => {
                let over = inp.utilisation.is_some_and(|u| u >= 1.0);
                let hot = down || over || (cooled && sustained(self.above_burst));
                if hot && inp.overflow_online {
                    step.transition = self.enter(State::Bursting, now);
                    // The first spill: move at once, as a raise always may.
                    self.control(now, rule, true);
                } else if !down && cooled && sustained(self.below_release) {
                    // Demand fell before the burst was needed: stop the public side again.
                    step.transition = self.enter(State::Idle, now);
                    step.event = Some(Event::Idle);
                }
            }
            State::Bursting => {
                if down {
                    // Its measured load says nothing about demand (it receives none): hold the
                    // share, so that its return is not a stampede.
                    self.why = "holding: the primary is down".into();
                } else {
                    self.control(now, rule, true);
                }
                if !down && cooled && sustained(self.below_release) {
                    step.transition = self.enter(State::Draining, now);
                }
            }
            State::Draining => {
                let again = down || sustained(self.above_burst);
                if again && inp.overflow_online && (down || cooled) {
                    step.transition = self.enter(State::Bursting, now);
                    return step;
                }
                if !down {
                    self.control(now, rule, false);
                }
                if self.share == 0.0 {
                    let at = *self.drained_at.get_or_insert(now);
                    if now.saturating_duration_since(at) >= rule.drain_wait() && cooled && !down {
                        step.transition = self.enter(State::Idle, now);
                        step.event = Some(Event::Idle);
                    }
                } else {
                    self.drained_at = None;
                }
            }
        }
        step
    }

    /// The share the primary's reading reflects, as the next [`Machine::step`] at `now` will
    /// work it out when no answers are counted (the fleet replay feeds no answer counters: one
    /// instance's are not the fleet's).
    pub fn seen_next(&self, now: Instant, rule: &Rule, primary_down: bool) -> f64 {
        let held = if primary_down { 1.0 } else { self.held.unwrap_or(self.share) };
        ewma(self.seen.zip(self.seen_at), held, now, rule.half_life)
    }

    /// Whether answers should carry the profile's transition TTL (a change is under way).
    pub fn in_transition(&self) -> bool {
        self.state != State::Idle
    }
}

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
            warm_lead: None,
            idle_ttl: Duration::from_secs(60),
            ttl: Duration::from_secs(5),
            // Readings and resolvers follow at once in these tests (no caches, no smoothing):
            // the real lags are in `simulate`'s scenarios.
            half_life: Duration::from_millis(1),
            settle: Duration::ZERO,
        }
    }

    const TICK: Duration = Duration::from_secs(5);

    /// Transitions with their time and event.
    type Log = Vec<(u64, State, Option<Event>)>;
    /// (time, primary utilisation, share) at each tick.
    type Trace = Vec<(u64, f64, f64)>;

    /// Plays `demand` (relative to the primary's capacity, as a function of seconds) for
    /// `secs` under `r`, the primary seeing `(1 - share)` of it at once; returns every
    /// transition and event with its time, the machine, and the trace.
    fn play_with(
        r: &Rule,
        secs: u64,
        overflow_online: bool,
        demand: impl Fn(u64) -> f64,
    ) -> (Log, Machine, Trace) {
        let t0 = Instant::now();
        let mut m = Machine::new();
        let mut log = Vec::new();
        let mut trace = Vec::new();
        let mut answers = (0u64, 0u64);
        for k in 0..=secs / TICK.as_secs() {
            let t = k * TICK.as_secs();
            let u = demand(t) * (1.0 - m.share);
            trace.push((t, u, m.share));
            answers.0 += ((1.0 - m.share) * 1000.0).round() as u64;
            answers.1 += (m.share * 1000.0).round() as u64;
            let inputs =
                Inputs { utilisation: Some(u), overflow_online, answers, ..Inputs::default() };
            let step = m.step(t0 + Duration::from_secs(t), inputs, r);
            if let Some((_, to)) = step.transition {
                log.push((t, to, step.event));
            }
        }
        (log, m, trace)
    }

    fn play(
        secs: u64,
        overflow_online: bool,
        demand: impl Fn(u64) -> f64,
    ) -> (Log, Machine, Trace) {
        play_with(&rule(), secs, overflow_online, demand)
    }

    fn states(log: &Log) -> Vec<State> {
        log.iter().map(|x| x.1).collect()
    }

    #[test]
    fn full_lifecycle_with_one_event_each() {
        // Demand: 0.4 until t=100, 0.95 until t=1000, then 0.3.
        let (log, m, _) = play(2000, true, |t| match t {
            0..100 => 0.4,
            100..1000 => 0.95,
            _ => 0.3,
        });
        assert_eq!(
            states(&log),
            [State::Warming, State::Bursting, State::Draining, State::Idle],
            "{log:?}"
        );
        // on_warm after `sustain` above warm_at (the Idle a server starts in needs no
        // cooldown); Bursting only after Warming's cooldown; on_idle once, at the end.
        assert_eq!(log[0], (130, State::Warming, Some(Event::Warm)));
        assert_eq!(log[1].0, 250, "{log:?}");
        assert_eq!(log.iter().filter(|x| x.2 == Some(Event::Idle)).count(), 1);
        assert_eq!(log[3].2, Some(Event::Idle));
        assert_eq!(m.share, 0.0);
        // Draining began only after release held for `sustain` once demand fell.
        assert!(log[2].0 >= 1000 + 30, "{log:?}");
    }

    #[test]
    fn every_state_lasts_at_least_cooldown() {
        // Demand that would rush through the lifecycle: every state still lasts `cooldown`.
        let (log, ..) = play(3000, true, |t| match t {
            0..100 => 0.95,
            100..400 => 0.2,
            400..1000 => 0.95,
            _ => 0.1,
        });
        assert!(log.len() >= 4, "{log:?}");
        for w in log.windows(2) {
            assert!(w[1].0 - w[0].0 >= 120, "{:?} then {:?} too soon: {log:?}", w[0], w[1]);
        }
    }

    #[test]
    fn over_capacity_bursts_without_waiting_for_cooldown() {
        // A safety exit: 1.5× capacity spills as soon as the overflow is Online.
        let (log, ..) = play(600, true, |_| 1.5);
        assert_eq!(log[0], (30, State::Warming, Some(Event::Warm)));
        assert_eq!(log[1].0, 35, "{log:?}");
    }

    #[test]
    fn no_spill_until_the_overflow_is_online() {
        let (log, _, _) = play(600, false, |_| 1.5);
        assert_eq!(states(&log), [State::Warming], "stays Warming: {log:?}");
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
        assert_eq!(states(&log), [State::Warming, State::Bursting], "{log:?}");
    }

    #[test]
    fn controller_settles_on_target_for_step_and_ramp() {
        // Step to 1.6x capacity: the primary settles on target (0.75), and the share never
        // moves by more than max_step per tick nor leaves [0, max_share].
        let (_, m, trace) = play(1800, true, |t| if t < 60 { 0.7 } else { 1.6 });
        let settled: Vec<f64> = trace.iter().filter(|x| x.0 > 300).map(|x| x.1).collect();
        assert!(settled.iter().all(|u| (u - 0.75).abs() < 0.02), "{settled:?}");
        assert!((m.share - (1.0 - 0.75 / 1.6)).abs() < 0.02, "share {}", m.share);
        assert!(trace.windows(2).all(|w| (w[1].2 - w[0].2).abs() <= 0.1 + 1e-9));
        // A ramp from 0.9 to 2.5x over an hour: tracking error stays within ±0.05.
        let (_, _, trace) = play(3600, true, |t| 0.9 + 1.6 * (t as f64 / 3600.0));
        let tracked: Vec<f64> = trace.iter().filter(|x| x.0 > 400).map(|x| x.1).collect();
        assert!(tracked.iter().all(|u| (u - 0.75).abs() < 0.05), "{tracked:?}");
        // Beyond what max_share allows, the share stops at max_share.
        let (_, m, trace) = play(1800, true, |_| 20.0);
        assert_eq!(m.share, 0.9);
        assert!(trace.iter().all(|x| (0.0..=0.9).contains(&x.2)));
    }

    #[test]
    fn unknown_utilisation_changes_nothing() {
        let t0 = Instant::now();
        let mut m = Machine::new();
        let r = rule();
        for k in 0..1000 {
            let inputs = Inputs { overflow_online: true, ..Inputs::default() };
            assert_eq!(m.step(t0 + TICK * k, inputs, &r).transition, None);
        }
    }

    #[test]
    fn a_down_primary_warms_at_once_and_its_return_is_not_a_stampede() {
        let t0 = Instant::now();
        let mut r = rule();
        r.settle = Duration::from_secs(20);
        let mut m = Machine::new();
        let down = Inputs { utilisation: Some(0.1), primary_down: true, ..Inputs::default() };
        assert_eq!(m.step(t0, down, &r).event, Some(Event::Warm));
        let down_ready = Inputs { overflow_online: true, ..down };
        assert_eq!(
            m.step(t0 + TICK, down_ready, &r).transition,
            Some((State::Warming, State::Bursting))
        );
        // It stays while the primary is down, however low its (stale) load reads, and the
        // share it had is held for the primary's return.
        m.share = 0.7;
        for k in 2..200 {
            assert_eq!(m.step(t0 + TICK * k, down_ready, &r).transition, None);
        }
        assert_eq!(m.share, 0.7);
        // Back, reading almost nothing: the share holds for the TTL plus the settling time
        // (25 s here), then comes down by at most max_step per move.
        let mut answers = (0, 0);
        let mut shares = Vec::new();
        for k in 200..240 {
            answers.0 += ((1.0 - m.share) * 1000.0) as u64;
            answers.1 += (m.share * 1000.0) as u64;
            let back = Inputs {
                utilisation: Some(0.05),
                overflow_online: true,
                answers,
                ..Inputs::default()
            };
            m.step(t0 + TICK * k, back, &r);
            shares.push(m.share);
        }
        assert!(shares[..5].iter().all(|&s| s == 0.7), "{shares:?}");
        assert!(shares.windows(2).all(|w| w[0] - w[1] <= 0.1 + 1e-9), "{shares:?}");
        assert!(shares.last().unwrap() < &0.7, "{shares:?}");
    }

    #[test]
    fn the_share_is_lowered_only_past_the_dead_time() {
        let mut r = rule();
        r.settle = Duration::from_secs(20);
        // Up to 1.6×, then down to 1.0×: raises happen tick by tick, each lowering waits
        // ttl + settle (25 s = 5 ticks) after the change before it.
        let (_, _, trace) = play_with(&r, 1200, true, |t| if t < 600 { 1.6 } else { 1.0 });
        let changes: Vec<(u64, f64)> = trace
            .windows(2)
            .filter(|w| (w[1].2 - w[0].2).abs() > 1e-9)
            .map(|w| (w[1].0, w[1].2 - w[0].2))
            .collect();
        let downs: Vec<u64> = changes.iter().filter(|c| c.1 < 0.0).map(|c| c.0).collect();
        assert!(!downs.is_empty(), "{changes:?}");
        for w in changes.windows(2).filter(|w| w[1].1 < 0.0) {
            assert!(
                w[1].0 - w[0].0 >= 25,
                "lowered {}s after the last change: {changes:?}",
                w[1].0 - w[0].0
            );
        }
        let ups: Vec<&(u64, f64)> = changes.iter().filter(|c| c.1 > 0.0).collect();
        assert!(ups.windows(2).any(|w| w[1].0 - w[0].0 == 5), "raises every tick: {changes:?}");
    }

    #[test]
    fn overflow_load_gives_the_demand_directly() {
        let t0 = Instant::now();
        let r = rule();
        let mut m = Machine { state: State::Bursting, share: 0.3, ..Machine::new() };
        // Primary at 0.9 of its capacity, the overflow carrying 0.7 of it: demand 1.6.
        let inputs = Inputs {
            utilisation: Some(0.9),
            overflow_demand: Some(0.7),
            overflow_online: true,
            ..Inputs::default()
        };
        m.step(t0, inputs, &r);
        assert_eq!(m.demand, Some(1.6));
        assert!((m.share - 0.4).abs() < 1e-9, "one max_step up: {}", m.share);
        assert!(m.why.starts_with("raised: estimated demand 1.60"), "{}", m.why);
    }

    #[test]
    fn a_fast_rise_warms_ahead_of_the_threshold() {
        let mut r = rule();
        r.warm_lead = Some(Duration::from_secs(120));
        // 0.2 → rising 0.004/s: reaches warm_at (0.6) at t=100, burst_at at t=150. With a lead of
        // 120 s it warms once the trend, measured over `sustain`, has held for `sustain`: at
        // t=60, long before warm_at.
        let (log, ..) = play_with(&r, 300, false, |t| 0.2 + 0.004 * t as f64);
        assert_eq!(log[0], (60, State::Warming, Some(Event::Warm)), "{log:?}");
        // A spike shorter than `sustain` is a steep trend too, but it does not hold.
        let (log, ..) = play_with(&r, 3600, false, |t| if t % 600 < 20 { 0.75 } else { 0.3 });
        assert!(log.is_empty(), "{log:?}");
        // Without a lead: at warm_at plus sustain.
        let (log, ..) = play(300, false, |t| 0.2 + 0.004 * t as f64);
        assert_eq!(log[0].0, 130, "{log:?}");
    }

    #[test]
    fn back_from_an_outage_the_share_only_rises_toward_the_demand_before_it() {
        let t0 = Instant::now();
        let mut r = rule();
        r.settle = Duration::from_secs(30);
        let mut m = Machine { state: State::Bursting, share: 0.4, ..Machine::new() };
        let up = |u: f64, o: f64| Inputs {
            utilisation: Some(u),
            overflow_demand: Some(o),
            overflow_online: true,
            ..Inputs::default()
        };
        // Demand 2.0 × capacity (0.6 on the primary, 1.4 on the overflow): a raise to 0.5.
        m.step(t0, up(0.6, 1.4), &r);
        assert!((m.share - 0.5).abs() < 1e-9, "{}", m.share);
        // Down, and back reading almost nothing: no lowering; raises toward 1 - 0.75/2.
        let down = Inputs { primary_down: true, overflow_online: true, ..Inputs::default() };
        for k in 1..10 {
            m.step(t0 + TICK * k, down, &r);
        }
        let mut shares = Vec::new();
        let mut whys = Vec::new();
        for k in 10..16 {
            m.step(t0 + TICK * k, up(0.02, 1.9), &r);
            shares.push(m.share);
            whys.push(m.why.clone());
        }
        assert!(shares.windows(2).all(|w| w[1] >= w[0]), "{shares:?}");
        assert!((shares.last().unwrap() - 0.625).abs() < 1e-9, "{shares:?}");
        assert!(whys[0].contains("the demand before its outage (2.00"), "{whys:?}");
    }
}
