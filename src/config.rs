//! `meridian.toml`: the schema, loading, and validation into a plain model.
//!
//! Only this module knows TOML. Parsing is strict (unknown keys are errors) and every value
//! keeps its span, so each problem is reported as `file:line:col: message` with a hint. Syntax
//! and type errors stop parsing (the document cannot be read further); every semantic problem
//! is collected and reported together.

use crate::diag::{Diagnostic, Diagnostics, Loc};
use crate::name::Name;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub server: Server,
    pub zones: Vec<ZoneConfig>,
}

/// `[server]`: listeners and protocol limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// Addresses served over both UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// UDP sockets (and threads) per listen address; 0 in the file means one per core.
    pub udp_workers: usize,
    /// The largest UDP answer Meridian sends and the payload size it advertises (RFC 6891).
    pub udp_payload: u16,
    pub tcp_max_connections: usize,
    pub tcp_idle_timeout: Duration,
}

/// `[[zone]]`: a zone served from a master file.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    pub name: Name,
    /// Resolved against the directory of the configuration file.
    pub file: PathBuf,
    /// Where `file` is written in the configuration, for errors about the file itself.
    pub file_loc: Loc,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5353";
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: Option<RawServer>,
    #[serde(default, rename = "zone")]
    zones: Vec<RawZone>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<Vec<Spanned<String>>>>,
    udp_workers: Option<Spanned<i64>>,
    udp_payload: Option<Spanned<i64>>,
    tcp_max_connections: Option<Spanned<i64>>,
    tcp_idle_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    name: Spanned<String>,
    file: Spanned<String>,
}

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
        let offset = e.span().map_or(0, |s| s.start);
        let message = e.message().trim_end().replace('\n', " ");
        let mut d = Diagnostic::new(Loc::from_offset(path, text, offset), message.clone());
        if message.contains("unknown field") {
            d = d.with_hint(
                "check the spelling; the keys each section accepts are listed in README.md",
            );
        }
        Diagnostics::from(d)
    })?;
    let mut v = Validator { path, text, diags: Diagnostics::default() };
    let server = v.server(raw.server);
    let zones = v.zones(raw.zones);
    let config = Config { path: path.to_path_buf(), server, zones };
    Ok((config, v.diags))
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
    diags: Diagnostics,
}

impl Validator<'_> {
    fn loc<T>(&self, s: &Spanned<T>) -> Loc {
        Loc::from_offset(self.path, self.text, s.span().start)
    }

    fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>, hint: Option<&str>) {
        let mut d = Diagnostic::new(self.loc(at), message);
        if let Some(h) = hint {
            d = d.with_hint(h);
        }
        self.diags.push(d);
    }

    fn int_in(
        &mut self,
        v: Option<Spanned<i64>>,
        key: &str,
        range: (i64, i64),
        default: i64,
    ) -> i64 {
        let Some(v) = v else { return default };
        if (range.0..=range.1).contains(v.get_ref()) {
            *v.get_ref()
        } else {
            let msg = format!("{key} = {} is out of range", v.get_ref());
            self.error(&v, msg, Some(&format!("allowed: {} to {}", range.0, range.1)));
            default
        }
    }

    fn server(&mut self, raw: Option<RawServer>) -> Server {
        let raw = raw.unwrap_or(RawServer {
            listen: None,
            udp_workers: None,
            udp_payload: None,
            tcp_max_connections: None,
            tcp_idle_timeout: None,
        });
        let mut listen = Vec::new();
        match raw.listen {
            None => listen.push(DEFAULT_LISTEN.parse().expect("default listen address parses")),
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.error(
                        &list,
                        "listen is empty",
                        Some("give at least one address, e.g. [\"127.0.0.1:5353\"]"),
                    );
                }
                for a in list.get_ref() {
                    match a.get_ref().parse::<SocketAddr>() {
                        Ok(addr) if listen.contains(&addr) => {
                            self.error(a, format!("listen address {addr} is given twice"), None)
                        }
                        Ok(addr) => listen.push(addr),
                        Err(_) => self.error(
                            a,
                            format!("invalid listen address {:?}", a.get_ref()),
                            Some("write IP:PORT, e.g. \"127.0.0.1:5353\" or \"[::1]:5353\""),
                        ),
                    }
                }
            }
        }
        let udp_workers = self.int_in(raw.udp_workers, "udp_workers", (0, 256), 0) as usize;
        let udp_payload =
            self.int_in(raw.udp_payload, "udp_payload", (512, 4096), DEFAULT_UDP_PAYLOAD as i64)
                as u16;
        let tcp_max_connections =
            self.int_in(raw.tcp_max_connections, "tcp_max_connections", (1, 1_000_000), 1024)
                as usize;
        let tcp_idle_timeout = match raw.tcp_idle_timeout {
            None => Duration::from_secs(10),
            Some(s) => match parse_duration(s.get_ref()) {
                Some(d) if d >= Duration::from_millis(100) && d <= Duration::from_secs(3600) => d,
                _ => {
                    let msg = format!("invalid tcp_idle_timeout {:?}", s.get_ref());
                    self.error(&s, msg, Some("a duration from \"100ms\" to \"1h\", e.g. \"10s\""));
                    Duration::from_secs(10)
                }
            },
        };
        Server { listen, udp_workers, udp_payload, tcp_max_connections, tcp_idle_timeout }
    }

    fn zones(&mut self, raw: Vec<RawZone>) -> Vec<ZoneConfig> {
        let dir = self.path.parent().unwrap_or(Path::new(""));
        let mut zones = Vec::new();
        let mut seen: HashMap<Name, Loc> = HashMap::new();
        for z in raw {
            let mut text = z.name.get_ref().trim().to_string();
            if !text.ends_with('.') {
                text.push('.'); // zone names in the configuration are always absolute
            }
            let name = match Name::parse(&text, None) {
                Ok(n) => n.to_lowercase(),
                Err(e) => {
                    self.error(
                        &z.name,
                        format!("invalid zone name {:?}: {e}", z.name.get_ref()),
                        None,
                    );
                    continue;
                }
            };
            let here = self.loc(&z.name);
            if let Some(first) = seen.get(&name) {
                let hint = format!("the first definition is at {first}");
                self.error(&z.name, format!("zone {name} is defined twice"), Some(&hint));
                continue;
            }
            seen.insert(name.clone(), here);
            if z.file.get_ref().is_empty() {
                self.error(&z.file, "zone file path is empty", None);
                continue;
            }
            zones.push(ZoneConfig {
                name,
                file: dir.join(z.file.get_ref()),
                file_loc: self.loc(&z.file),
            });
        }
        if zones.is_empty() && self.diags.is_empty() {
            self.diags.push(
                Diagnostic::new(Loc::new(self.path, 1, 1), "no zones are configured")
                    .with_hint("add a [[zone]] table with name and file"),
            );
        }
        zones
    }
}

/// Parses a duration written as a number and a unit: `500ms`, `10s`, `5m`, `1h`, `1d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit {
        "ms" => n,
        "s" => n.checked_mul(1000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> String {
        parse(Path::new("m.toml"), text).unwrap_err().to_string()
    }

    const ZONE: &str = "[[zone]]\nname = \"example.com\"\nfile = \"z.zone\"\n";

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse(Path::new("conf/m.toml"), ZONE).unwrap();
        assert_eq!(c.server.listen, vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]);
        assert_eq!(c.server.udp_payload, 1232);
        assert_eq!(c.zones[0].name.to_string(), "example.com.");
        assert_eq!(c.zones[0].file, Path::new("conf/z.zone"));
        assert_eq!(c.zones[0].file_loc.to_string(), "conf/m.toml:3:8");
    }

    #[test]
    fn reports_each_problem_with_position() {
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1\", \"[::1]:53\"]\nudp_payload = 100\n{ZONE}{ZONE}"
        );
        let e = errors(&text);
        assert!(e.contains("m.toml:2:11: invalid listen address \"127.0.0.1\""), "{e}");
        assert!(e.contains("m.toml:3:15: udp_payload = 100 is out of range"), "{e}");
        assert!(e.contains("m.toml:8:8: zone example.com. is defined twice"), "{e}");
        assert!(e.contains("hint: the first definition is at m.toml:5:8"), "{e}");
    }

    #[test]
    fn unknown_keys_and_wrong_types() {
        let e = errors(&format!("[server]\nlisten_on = []\n{ZONE}"));
        assert!(e.starts_with("error: m.toml:2:1: unknown field `listen_on`"), "{e}");
        let e = errors(&format!("[server]\nudp_workers = \"two\"\n{ZONE}"));
        assert!(e.starts_with("error: m.toml:2:15: invalid type"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
