//! `meridian simulate` scenarios: demand over time, health events, resolvers.

use super::parse_duration;
use crate::diag::{Diagnostic, Diagnostics, Loc};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// A `meridian simulate` scenario: demand over time, health events, resolvers.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The profile to simulate (absolute name; trailing dot optional).
    pub profile: String,
    pub duration: Duration,
    /// How often the simulated world is looked at: resolvers' caches, and the samples a push
    /// load source receives (polled sources keep their own interval). The burst rule ticks
    /// at its own `interval`, as in the server. Default 1 s.
    pub step: Duration,
    /// Client demand in requests per second: (time, value) points, linear in between.
    pub demand: Vec<(Duration, f64)>,
    /// How many resolvers share the demand, each caching answers for their TTL.
    pub resolvers: u32,
    pub events: Vec<ScenarioEvent>,
    /// The overflow endpoints are down until this long after `on_warm`, and down again after
    /// `on_idle` (the public side is started and stopped); always up when not given.
    pub overflow_startup: Option<Duration>,
}

/// An event at a point of the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioEvent {
    pub at: Duration,
    pub endpoint: String,
    pub change: Change,
}

/// What happens to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Its health (what probes would find).
    Status(crate::live::Status),
    /// Its load source goes silent (no more samples: it turns stale), or speaks again.
    LoadSilent,
    LoadResumed,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    profile: String,
    duration: String,
    step: Option<String>,
    demand: Vec<(String, f64)>,
    resolvers: Option<u32>,
    overflow_startup: Option<String>,
    #[serde(default, rename = "event")]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: String,
    endpoint: String,
    status: Option<String>,
    load: Option<String>,
}

/// Reads a scenario file.
pub fn load_scenario(path: &Path) -> Result<Scenario, Diagnostics> {
    let at =
        |line: u32, msg: String| Diagnostics::from(Diagnostic::new(Loc::new(path, line, 1), msg));
    let text =
        std::fs::read_to_string(path).map_err(|e| at(1, format!("cannot read scenario: {e}")))?;
    let raw: RawScenario = toml::from_str(&text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        Diagnostics::from(Diagnostic::new(
            Loc::from_offset(path, &text, offset),
            e.message().trim_end().replace('\n', " "),
        ))
    })?;
    let dur = |s: &str| {
        parse_duration(s).ok_or_else(|| at(1, format!("{s:?} is not a duration such as \"90m\"")))
    };
    let mut demand = Vec::new();
    for (t, v) in &raw.demand {
        if !(v.is_finite() && *v >= 0.0) {
            return Err(at(1, format!("demand {v} is not a non-negative number")));
        }
        demand.push((dur(t)?, *v));
    }
    if demand.is_empty() || demand.windows(2).any(|w| w[1].0 < w[0].0) {
        return Err(at(
            1,
            "demand needs at least one [time, requests per second] point, in time order".into(),
        ));
    }
    let mut events = Vec::new();
    for e in &raw.events {
        let change = match (e.status.as_deref(), e.load.as_deref()) {
            (Some("Online"), None) => Change::Status(crate::live::Status::Online),
            (Some("Degraded"), None) => Change::Status(crate::live::Status::Degraded),
            (Some("Disabled"), None) => Change::Status(crate::live::Status::Disabled),
            (Some(other), None) => {
                return Err(at(
                    1,
                    format!("event status {other:?}: expected Online, Degraded or Disabled"),
                ));
            }
            (None, Some("silent")) => Change::LoadSilent,
            (None, Some("resumed")) => Change::LoadResumed,
            (None, Some(other)) => {
                return Err(at(1, format!("event load {other:?}: expected silent or resumed")));
            }
            _ => {
                return Err(at(1, "an event gives either status or load".into()));
            }
        };
        events.push(ScenarioEvent { at: dur(&e.at)?, endpoint: e.endpoint.clone(), change });
    }
    events.sort_by_key(|e| e.at);
    Ok(Scenario {
        profile: raw.profile,
        duration: dur(&raw.duration)?,
        step: raw
            .step
            .as_deref()
            .map(dur)
            .transpose()?
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(100)),
        demand,
        resolvers: raw.resolvers.unwrap_or(100).clamp(1, 100_000),
        events,
        overflow_startup: raw.overflow_startup.as_deref().map(dur).transpose()?,
    })
}
