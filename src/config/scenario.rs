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
    /// Virtual time between ticks; the burst rule's own interval when not given.
    pub step: Option<Duration>,
    /// Client demand in requests per second: (time, value) points, linear in between.
    pub demand: Vec<(Duration, f64)>,
    /// How many resolvers share the demand, each caching answers for their TTL.
    pub resolvers: u32,
    pub events: Vec<ScenarioEvent>,
}

/// A health event at a point of the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioEvent {
    pub at: Duration,
    pub endpoint: String,
    pub status: crate::live::Status,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    profile: String,
    duration: String,
    step: Option<String>,
    demand: Vec<(String, f64)>,
    resolvers: Option<u32>,
    #[serde(default, rename = "event")]
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: String,
    endpoint: String,
    status: String,
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
        let status = match e.status.as_str() {
            "Online" => crate::live::Status::Online,
            "Degraded" => crate::live::Status::Degraded,
            "Disabled" => crate::live::Status::Disabled,
            other => {
                return Err(at(
                    1,
                    format!("event status {other:?}: expected Online, Degraded or Disabled"),
                ));
            }
        };
        events.push(ScenarioEvent { at: dur(&e.at)?, endpoint: e.endpoint.clone(), status });
    }
    Ok(Scenario {
        profile: raw.profile,
        duration: dur(&raw.duration)?,
        step: raw.step.as_deref().map(dur).transpose()?,
        demand,
        resolvers: raw.resolvers.unwrap_or(100).clamp(1, 100_000),
        events,
    })
}
