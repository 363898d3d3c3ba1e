//! `meridian.toml`: the schema, loading, and validation into a plain model.
//!
//! Only this module knows TOML. Parsing is strict (unknown keys are errors) and every value
//! keeps its span, so each problem is reported as `file:line:col: message` with a hint. Syntax
//! and type errors stop parsing (the document cannot be read further); every semantic problem
//! is collected and reported together.
//!
//! - `schema`: the TOML schema as serde types with positions.
//! - `validate`: schema → model, every problem collected.
//! - `model`: the plain, validated configuration that the rest of Meridian reads.
//! - `scenario`: `meridian simulate` scenarios.

mod model;
mod scenario;
mod schema;
#[cfg(test)]
mod tests;
mod validate;

pub use model::*;
pub use scenario::{Change, Scenario, ScenarioEvent, load_scenario};

use crate::diag::{Diagnostic, Diagnostics, Loc};
use schema::RawConfig;
use std::path::Path;
use std::time::Duration;
use validate::Validator;

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    let (config, diags) = load_lenient(path)?;
    diags.into_result(config)
}

/// Reads the configuration at `path`, returning a best-effort model alongside every semantic
/// problem (bad values replaced by defaults), so that callers can go on to check the zone files
/// it names and report everything at once. `Err` only when the file cannot be read or parsed.
pub fn load_lenient(path: &Path) -> Result<(Config, Diagnostics), Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::new(Loc::new(path, 1, 1), format!("cannot read configuration: {e}"))
            .with_hint("pass the configuration file with -c FILE")
    })?;
    parse_lenient(path, &text)
}

/// Validates configuration `text`, read from `path` (used for messages and relative paths).
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    let (config, diags) = parse_lenient(path, text)?;
    diags.into_result(config)
}

fn parse_lenient(path: &Path, text: &str) -> Result<(Config, Diagnostics), Diagnostics> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim_end().replace('\n', " ");
        let mut d = Diagnostic::new(Loc::from_offset(path, text, span.start), message.clone());
        if let Some(hint) = syntax_hint(&message, text, span) {
            d = d.with_hint(hint);
        }
        Diagnostics::from(d)
    })?;
    let mut v = Validator {
        path,
        text,
        lines: crate::diag::Lines::new(text),
        diags: Diagnostics::default(),
        fleet_declared: raw.fleet.is_some(),
    };
    let server = v.server(raw.server);
    let keys = v.keys(&raw.keys);
    let zones = v.zones(raw.zones, &keys);
    let geoip = raw.geoip.map(|g| GeoIpConfig {
        database: path.parent().unwrap_or(Path::new("")).join(g.database.get_ref()),
        loc: v.loc(&g.database),
    });
    let profiles = v.profiles(raw.profiles, &zones, geoip.is_some());
    let admin = v.admin(raw.admin);
    let fleet = v.fleet_shared(raw.fleet.as_ref());
    let config =
        Config { path: path.to_path_buf(), server, zones, geoip, profiles, admin, fleet, keys };
    Ok((config, v.diags))
}

/// A hint for the mistakes new users make most, from the TOML parser's message and the text
/// at the span it points to: a number or a list written as a string, a misspelt key or table.
fn syntax_hint(message: &str, text: &str, span: std::ops::Range<usize>) -> Option<String> {
    let line_start = text[..span.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_string());
    let value = text.get(span.clone()).unwrap_or("").trim();
    let unquoted = value.trim_matches(|c| c == '"' || c == '\'');
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let valid = rest.split_once("expected ").map_or("", |x| x.1);
        return Some(format!(
            "check the spelling; valid keys and tables here: {}",
            valid.trim_start_matches("one of ").replace('`', "")
        ));
    }
    let key = key?;
    if message.starts_with("invalid type: string") {
        if message.contains("expected i64") || message.contains("expected an integer") {
            let unit = if key == "ttl" || key.ends_with("_ttl") { " of seconds" } else { "" };
            return Some(format!("{key} is a number{unit}, without quotes: {key} = {unquoted}"));
        }
        if message.contains("expected f64") || message.contains("expected a float") {
            return Some(format!("{key} is a number, without quotes: {key} = {unquoted}"));
        }
        if message.contains("expected a sequence") {
            return Some(format!("{key} is a list: {key} = [\"{unquoted}\"]"));
        }
        if message.contains("expected a boolean") {
            return Some(format!("{key} is true or false, without quotes"));
        }
    }
    if message.starts_with("invalid type: integer") && message.contains("expected a string") {
        return Some(format!("{key} is a string; durations carry a unit: {key} = \"{unquoted}s\""));
    }
    None
}
/// Parses a duration written as a number and a unit: `500ms`, `10s`, `5m`, `1h`, `1d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    // humantime: "500ms", "10s", "5m", "1h", "1d", and combinations such as "1h30m".
    humantime::parse_duration(text.trim()).ok()
}
