//! `meridian.toml`: the schema, loading, and validation into a plain model.
//!
//! Only this module knows TOML. Parsing is strict (unknown keys are errors) and every value
//! keeps its span, so each problem is reported as `file:line:col: message` with a hint. Syntax
//! and type errors stop parsing (the document cannot be read further); every semantic problem
//! is collected and reported together.

use crate::diag::{Diagnostic, Diagnostics, Loc};
use crate::geo::{self, Location, Region};
use crate::name::Name;
use crate::policy::{AllDown, Cidr, MAX_DEPTH, Method};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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
    pub geoip: Option<GeoIpConfig>,
    pub profiles: Vec<ProfileConfig>,
    pub admin: AdminConfig,
}

/// `[admin]`: the HTTP admin API, metrics and status page.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// `None` when the admin API is turned off.
    pub listen: Option<SocketAddr>,
    /// Bearer token required on every request but `/healthz` and `/readyz`; mandatory when
    /// `listen` is not a loopback address.
    pub token: Option<String>,
}

/// How an endpoint is probed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MonitorConfig {
    pub protocol: Protocol,
    pub port: u16,
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Failures tolerated before the endpoint is Degraded (it takes one more).
    pub tolerated_failures: u32,
    /// Consecutive successes that bring a Degraded endpoint back Online.
    pub recover_after: u32,
    /// Inclusive status code ranges counted as success (HTTP/HTTPS).
    pub expected_status: Vec<(u16, u16)>,
    pub headers: Vec<(String, String)>,
    pub verify_tls: bool,
}

/// A monitor's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Https,
    Tcp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tcp => "TCP",
        }
    }
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
    /// Honour EDNS Client Subnet (RFC 7871) in queries.
    pub ecs: bool,
    /// Reload when the configuration, a zone file or the GeoIP database changes.
    pub watch: bool,
    /// Response rate limiting for UDP, when configured.
    pub rrl: Option<crate::rrl::RrlConfig>,
    /// The fraction of queries logged (target `meridian::query`); 0 logs none.
    pub query_log: f64,
}

/// `[geoip]`: the database the geographic and performance methods consult.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoIpConfig {
    pub database: PathBuf,
    pub loc: Loc,
}

/// `[[profile]]`: a traffic-managed name.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileConfig {
    pub name: Name,
    /// Where the name is written, for errors found against zone data.
    pub loc: Loc,
    pub method: Method,
    pub ttl: u32,
    pub max_answers: u8,
    pub sticky: bool,
    pub when_all_down: AllDown,
    pub endpoints: Vec<EndpointConfig>,
    pub burst: Option<BurstConfig>,
    /// Split horizon: client networks answered with the endpoints' addresses for that view.
    pub views: Vec<ViewConfig>,
}

/// `[[profile.view]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewConfig {
    pub name: String,
    pub networks: Vec<Cidr>,
}

/// `[[profile.endpoint]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    pub name: String,
    pub target: TargetConfig,
    pub priority: u32,
    pub weight: u32,
    pub regions: Vec<Region>,
    pub location: Option<Location>,
    pub subnets: Vec<Cidr>,
    pub enabled: bool,
    pub min_child_endpoints: u32,
    pub min_child_ipv4: u32,
    pub min_child_ipv6: u32,
    /// How the endpoint is probed; `None` = not monitored (always served).
    pub monitor: Option<MonitorConfig>,
    /// Where the endpoint's load comes from, if anywhere.
    pub load: Option<LoadConfig>,
    /// The addresses this endpoint answers with for each view (by index in the profile's
    /// views); an endpoint without one is not offered to that view's clients.
    pub view_addresses: Vec<(usize, Vec<IpAddr>)>,
}

/// `[profile.endpoint.load]`: where an endpoint's load comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    pub source: LoadSource,
    /// The raw value that means 100 % utilisation.
    pub capacity: f64,
    pub interval: Duration,
    pub half_life: Duration,
    pub stale_after: Duration,
}

/// The kinds of load source.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadSource {
    /// Values arrive through the admin API.
    Push,
    /// Poll a URL: a number from JSON by JSON pointer, or one series of a Prometheus text
    /// exposition, by metric name and labels.
    Http {
        url: String,
        json_pointer: Option<String>,
        metric: Option<String>,
        labels: Vec<(String, String)>,
    },
    /// An instant PromQL query against a Prometheus server's HTTP API.
    Prometheus { url: String, query: String },
}

/// `[profile.burst]`: spill from primary to overflow endpoints when load demands it.
#[derive(Debug, Clone, PartialEq)]
pub struct BurstConfig {
    /// Indexes into the profile's endpoints.
    pub primary: Vec<usize>,
    pub overflow: Vec<usize>,
    pub rule: crate::burst::Rule,
    pub interval: Duration,
    pub sticky: bool,
    pub transition_ttl: Option<u32>,
    pub on_warm: Option<Hook>,
    pub on_idle: Option<Hook>,
}

/// A lifecycle webhook: an HTTP POST, or a local command given the same JSON on stdin.
#[derive(Debug, Clone, PartialEq)]
pub enum Hook {
    Http { url: String, secret: Option<String> },
    Exec { command: Vec<String> },
}

/// What an endpoint answers with. A nested profile is referred to by its index in
/// `Config::profiles`.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetConfig {
    Addresses(Vec<IpAddr>),
    Cname(Name),
    Profile(usize),
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
    geoip: Option<RawGeoIp>,
    #[serde(default, rename = "profile")]
    profiles: Vec<RawProfile>,
    admin: Option<RawAdmin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    enabled: Option<bool>,
    listen: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    token_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeoIp {
    database: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: Spanned<String>,
    method: Spanned<String>,
    ttl: Option<Spanned<i64>>,
    max_answers: Option<Spanned<i64>>,
    sticky: Option<Spanned<String>>,
    when_all_down: Option<Spanned<String>>,
    monitor: Option<Spanned<toml::Value>>,
    burst: Option<Spanned<toml::Value>>,
    #[serde(default, rename = "view")]
    views: Vec<RawView>,
    #[serde(default, rename = "endpoint")]
    endpoints: Vec<RawEndpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    name: Spanned<String>,
    address: Option<Spanned<toml::Value>>,
    cname: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
    priority: Option<Spanned<i64>>,
    weight: Option<Spanned<i64>>,
    geo: Option<Spanned<Vec<Spanned<String>>>>,
    location: Option<Spanned<toml::Value>>,
    subnets: Option<Spanned<Vec<Spanned<String>>>>,
    enabled: Option<bool>,
    min_child_endpoints: Option<Spanned<i64>>,
    min_child_ipv4: Option<Spanned<i64>>,
    min_child_ipv6: Option<Spanned<i64>>,
    monitor: Option<Spanned<toml::Value>>,
    load: Option<Spanned<toml::Value>>,
    views: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawView {
    name: Spanned<String>,
    networks: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<Vec<Spanned<String>>>>,
    udp_workers: Option<Spanned<i64>>,
    udp_payload: Option<Spanned<i64>>,
    tcp_max_connections: Option<Spanned<i64>>,
    tcp_idle_timeout: Option<Spanned<String>>,
    ecs: Option<bool>,
    watch: Option<bool>,
    rrl: Option<Spanned<RawRrl>>,
    query_log: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRrl {
    responses_per_second: Option<Spanned<i64>>,
    slip: Option<Spanned<i64>>,
    ipv4_prefix: Option<Spanned<i64>>,
    ipv6_prefix: Option<Spanned<i64>>,
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
    let geoip = raw.geoip.map(|g| GeoIpConfig {
        database: path.parent().unwrap_or(Path::new("")).join(g.database.get_ref()),
        loc: v.loc(&g.database),
    });
    let profiles = v.profiles(raw.profiles, &zones, geoip.is_some());
    let admin = v.admin(raw.admin);
    let config = Config { path: path.to_path_buf(), server, zones, geoip, profiles, admin };
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
            ecs: None,
            watch: None,
            rrl: None,
            query_log: None,
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
        let ecs = raw.ecs.unwrap_or(true);
        let watch = raw.watch.unwrap_or(false);
        let query_log = match raw.query_log {
            None => 0.0,
            Some(q) if (0.0..=1.0).contains(q.get_ref()) => *q.get_ref(),
            Some(q) => {
                self.error(
                    &q,
                    "query_log is the fraction of queries logged, from 0.0 to 1.0",
                    Some("e.g. 0.01 logs one query in a hundred"),
                );
                0.0
            }
        };
        let rrl = raw.rrl.map(|r| {
            let r = r.into_inner();
            crate::rrl::RrlConfig {
                responses_per_second: self.int_in(
                    r.responses_per_second,
                    "responses_per_second",
                    (1, 1_000_000),
                    20,
                ) as u32,
                slip: self.int_in(r.slip, "slip", (0, 10), 2) as u32,
                ipv4_prefix: self.int_in(r.ipv4_prefix, "ipv4_prefix", (8, 32), 24) as u8,
                ipv6_prefix: self.int_in(r.ipv6_prefix, "ipv6_prefix", (16, 128), 56) as u8,
            }
        });
        Server {
            listen,
            udp_workers,
            udp_payload,
            tcp_max_connections,
            tcp_idle_timeout,
            ecs,
            watch,
            rrl,
            query_log,
        }
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

impl Validator<'_> {
    fn profiles(
        &mut self,
        raw: Vec<RawProfile>,
        zones: &[ZoneConfig],
        have_geoip: bool,
    ) -> Vec<ProfileConfig> {
        // Names first, so that nested endpoints can refer to profiles defined later.
        let mut names: Vec<Option<Name>> = Vec::with_capacity(raw.len());
        let mut seen: HashMap<Name, Loc> = HashMap::new();
        for rp in &raw {
            let name = match resolve_name(rp.name.get_ref(), zones) {
                Ok(n) => n,
                Err(e) => {
                    self.error(&rp.name, e.0, e.1.as_deref());
                    names.push(None);
                    continue;
                }
            };
            let zone =
                zones.iter().filter(|z| name.is_within(&z.name)).max_by_key(|z| z.name.len());
            match zone {
                None => {
                    let served: Vec<String> = zones.iter().map(|z| z.name.to_string()).collect();
                    let hint = format!("served zones: {}", served.join(", "));
                    self.error(
                        &rp.name,
                        format!("profile {name} is not inside a served zone"),
                        Some(&hint),
                    );
                }
                Some(z) if z.name == name => {
                    self.error(
                        &rp.name,
                        format!("profile {name} is a zone apex"),
                        Some("a traffic-managed name must be below the apex, e.g. www"),
                    );
                }
                Some(_) => {}
            }
            if let Some(first) = seen.get(&name) {
                let hint = format!("the first definition is at {first}");
                self.error(&rp.name, format!("profile {name} is defined twice"), Some(&hint));
            } else {
                seen.insert(name.clone(), self.loc(&rp.name));
            }
            names.push(Some(name));
        }

        let mut out = Vec::with_capacity(raw.len());
        let mut children: Vec<Vec<(usize, Spanned<String>)>> = Vec::with_capacity(raw.len());
        for (i, rp) in raw.into_iter().enumerate() {
            let (profile, kids) = self.profile(rp, names[i].clone(), &names, zones, have_geoip);
            out.push(profile);
            children.push(kids);
        }
        self.check_nesting(&out, &children);
        out
    }

    fn profile(
        &mut self,
        rp: RawProfile,
        name: Option<Name>,
        names: &[Option<Name>],
        zones: &[ZoneConfig],
        have_geoip: bool,
    ) -> (ProfileConfig, Vec<(usize, Spanned<String>)>) {
        let loc = self.loc(&rp.name);
        let method = match Method::parse(rp.method.get_ref()) {
            Some(m) => m,
            None => {
                let hint = format!("one of: {}", Method::NAMES.join(", "));
                self.error(
                    &rp.method,
                    format!("unknown routing method {:?}", rp.method.get_ref()),
                    Some(&hint),
                );
                Method::Priority
            }
        };
        if method.uses_geo() && !have_geoip {
            self.error(
                &rp.method,
                format!("{} routing needs a GeoIP database", method.as_str()),
                Some("add [geoip] database = \"geoip/demo.mmdb\" (see README.md, GeoIP)"),
            );
        }
        let ttl = self.int_in(rp.ttl, "ttl", (0, i32::MAX as i64), 60) as u32;
        if let (Some(m), false) = (&rp.max_answers, method == Method::MultiValue) {
            self.error(m, "max_answers only applies to multivalue profiles", None);
        }
        let max_answers = self.int_in(rp.max_answers, "max_answers", (1, 10), 10) as u8;
        let sticky = match &rp.sticky {
            None => false,
            Some(s) if s.get_ref() == "client-subnet" && method == Method::Weighted => true,
            Some(s) if s.get_ref() == "client-subnet" => {
                self.error(s, "sticky only applies to weighted profiles", None);
                false
            }
            Some(s) => {
                self.error(
                    s,
                    format!("unknown sticky mode {:?}", s.get_ref()),
                    Some("the only mode is \"client-subnet\""),
                );
                false
            }
        };
        let when_all_down = match rp.when_all_down.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "serve-all")) => AllDown::ServeAll,
            Some((_, "nodata")) => AllDown::NoData,
            Some((_, "servfail")) => AllDown::ServFail,
            Some((s, other)) => {
                self.error(
                    s,
                    format!("unknown when_all_down {other:?}"),
                    Some("one of: serve-all, nodata, servfail"),
                );
                AllDown::ServeAll
            }
        };
        if rp.endpoints.is_empty() {
            self.error(
                &rp.name,
                "profile has no endpoints",
                Some("add [[profile.endpoint]] tables after it"),
            );
        }

        let mut views: Vec<ViewConfig> = Vec::new();
        for rv in &rp.views {
            if views.iter().any(|v| &v.name == rv.name.get_ref()) {
                self.error(
                    &rv.name,
                    format!("view {:?} is defined twice", rv.name.get_ref()),
                    None,
                );
            }
            let mut networks = Vec::new();
            for text in rv.networks.get_ref() {
                match geo::mmdb::parse_cidr(text.get_ref()) {
                    Ok((addr, prefix)) => {
                        let c = Cidr { addr, prefix };
                        let clash = views
                            .iter()
                            .flat_map(|v| v.networks.iter())
                            .chain(networks.iter())
                            .find(|o| {
                                Cidr { addr: o.addr, prefix: o.prefix.min(c.prefix) }
                                    .contains(c.addr)
                            });
                        if let Some(o) = clash {
                            self.error(
                                text,
                                format!("view network {c} overlaps {o}"),
                                Some("a client belongs to one view"),
                            );
                        }
                        networks.push(c);
                    }
                    Err(e) => self.error(text, e, None),
                }
            }
            if networks.is_empty() {
                self.error(&rv.networks, "a view needs at least one network", None);
            }
            views.push(ViewConfig { name: rv.name.get_ref().clone(), networks });
        }
        let mut endpoints = Vec::with_capacity(rp.endpoints.len());
        let mut kids = Vec::new();
        let mut endpoint_names: HashMap<String, ()> = HashMap::new();
        let mut priorities: HashMap<u32, String> = HashMap::new();
        let mut regions: HashMap<Region, String> = HashMap::new();
        let mut subnets: Vec<(Cidr, String)> = Vec::new();
        for (pos, re) in rp.endpoints.into_iter().enumerate() {
            let ename = re.name.get_ref().clone();
            if ename.is_empty() || endpoint_names.insert(ename.clone(), ()).is_some() {
                self.error(
                    &re.name,
                    format!("endpoint name {ename:?} is empty or used twice in this profile"),
                    None,
                );
            }
            let given = [re.address.is_some(), re.cname.is_some(), re.profile.is_some()];
            let target = match (re.address, re.cname, re.profile) {
                (Some(a), None, None) => TargetConfig::Addresses(self.addresses(&a)),
                (None, Some(c), None) => {
                    let text = c.get_ref().trim_end_matches('.').to_string() + ".";
                    match Name::parse(&text, None) {
                        Ok(n) => TargetConfig::Cname(n),
                        Err(e) => {
                            self.error(&c, format!("invalid cname {:?}: {e}", c.get_ref()), None);
                            TargetConfig::Addresses(Vec::new())
                        }
                    }
                }
                (None, None, Some(pr)) => {
                    let target = resolve_name(pr.get_ref(), zones).ok();
                    match target.and_then(|t| names.iter().position(|n| n.as_ref() == Some(&t))) {
                        Some(idx) => {
                            kids.push((idx, pr.clone()));
                            TargetConfig::Profile(idx)
                        }
                        None => {
                            self.error(
                                &pr,
                                format!("nested profile {:?} is not defined", pr.get_ref()),
                                Some("define it with its own [[profile]] table"),
                            );
                            TargetConfig::Addresses(Vec::new())
                        }
                    }
                }
                _ => {
                    let n = given.iter().filter(|g| **g).count();
                    self.error(&re.name, format!("endpoint {ename:?} needs exactly one of address, cname, profile ({n} given)"), None);
                    TargetConfig::Addresses(Vec::new())
                }
            };
            if method == Method::MultiValue && !matches!(target, TargetConfig::Addresses(_)) {
                self.error(
                    &re.name,
                    format!("multivalue endpoint {ename:?} must be an address endpoint"),
                    Some("multivalue answers carry addresses only"),
                );
            }
            let priority =
                self.int_in(re.priority.clone(), "priority", (1, 1000), pos as i64 + 1) as u32;
            if method == Method::Priority
                && let Some(other) = priorities.insert(priority, ename.clone())
            {
                let msg = format!("priority {priority} is also {other:?}'s");
                let hint = Some("priorities are unique within a profile");
                match &re.priority {
                    Some(at) => self.error(at, msg, hint),
                    None => self.error(&re.name, msg, hint),
                }
            }
            let weight = self.int_in(re.weight, "weight", (1, 1000), 1) as u32;

            let mut eregions = Vec::new();
            if let Some(g) = &re.geo {
                if method != Method::Geographic {
                    self.error(g, "geo only applies to geographic profiles", None);
                }
                for code in g.get_ref() {
                    match Region::parse(code.get_ref()) {
                        Ok(r) => {
                            if let Some(other) = regions.insert(r, ename.clone()) {
                                self.error(code, format!("region {r} is already mapped to {other:?}"), Some("a region code belongs to one endpoint"));
                            }
                            eregions.push(r);
                        }
                        Err(e) => self.error(code, e, Some("codes: WORLD, GEO-AF/AN/AP/AS/EU/ME/NA/SA, ISO countries (DE), subdivisions (US-WA)")),
                    }
                }
            }
            if method == Method::Geographic && eregions.is_empty() && re.geo.is_none() {
                self.error(
                    &re.name,
                    format!("geographic endpoint {ename:?} has no geo regions"),
                    Some("e.g. geo = [\"GEO-EU\"] or [\"WORLD\"]"),
                );
            }

            let location = re.location.as_ref().and_then(|l| self.location(l));
            if method == Method::Performance && location.is_none() && re.location.is_none() {
                self.error(
                    &re.name,
                    format!("performance endpoint {ename:?} has no location"),
                    Some("location = \"westeurope\" or [52.37, 4.90]"),
                );
            }

            let mut esubnets = Vec::new();
            if let Some(list) = &re.subnets {
                if method != Method::Subnet {
                    self.error(list, "subnets only apply to subnet profiles", None);
                }
                for text in list.get_ref() {
                    match geo::mmdb::parse_cidr(text.get_ref()) {
                        Ok((addr, prefix)) => {
                            let c = Cidr { addr, prefix };
                            let clash = subnets.iter().find(|(o, _)| {
                                let shorter = o.prefix.min(c.prefix);
                                Cidr { addr: o.addr, prefix: shorter }.contains(c.addr)
                            });
                            if let Some((o, owner)) = clash {
                                self.error(
                                    text,
                                    format!("subnet {c} overlaps {o} of {owner:?}"),
                                    Some("subnets within a profile must not overlap"),
                                );
                            }
                            subnets.push((c, ename.clone()));
                            esubnets.push(c);
                        }
                        Err(e) => self.error(text, e, None),
                    }
                }
            }

            let nested = matches!(target, TargetConfig::Profile(_));
            for (v, key) in [
                (&re.min_child_endpoints, "min_child_endpoints"),
                (&re.min_child_ipv4, "min_child_ipv4"),
                (&re.min_child_ipv6, "min_child_ipv6"),
            ] {
                if let (Some(v), false) = (v, nested) {
                    self.error(v, format!("{key} only applies to nested profile endpoints"), None);
                }
            }
            let min_child_endpoints =
                self.int_in(re.min_child_endpoints, "min_child_endpoints", (1, 1000), 1) as u32;
            let min_child_ipv4 =
                self.int_in(re.min_child_ipv4, "min_child_ipv4", (0, 1000), 0) as u32;
            let min_child_ipv6 =
                self.int_in(re.min_child_ipv6, "min_child_ipv6", (0, 1000), 0) as u32;
            let monitor = match &target {
                // A nested profile's availability comes from its children, never a probe.
                TargetConfig::Profile(_) => {
                    if let Some(m) = &re.monitor {
                        self.error(m, "nested profile endpoints are not probed: their status comes from the child profile", None);
                    }
                    None
                }
                _ => self.monitor(rp.monitor.as_ref(), re.monitor.as_ref()),
            };
            let load = re.load.as_ref().and_then(|l| self.load(l));
            let mut view_addresses = Vec::new();
            if let Some(t) = &re.views {
                for (view, value) in t.get_ref() {
                    let Some(vi) = views.iter().position(|v| &v.name == view) else {
                        let known: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
                        let hint = format!(
                            "views of this profile: {}",
                            if known.is_empty() { "none".into() } else { known.join(", ") }
                        );
                        self.error(t, format!("endpoint {ename:?}: no view {view:?}"), Some(&hint));
                        continue;
                    };
                    let texts: Vec<&str> = match value {
                        toml::Value::String(a) => vec![a.as_str()],
                        toml::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
                        _ => Vec::new(),
                    };
                    let addrs: Vec<IpAddr> = texts.iter().filter_map(|a| a.parse().ok()).collect();
                    if addrs.is_empty() || addrs.len() != texts.len() {
                        self.error(
                            t,
                            format!("endpoint {ename:?}: view {view:?} needs IP addresses"),
                            Some("views = { internal = \"10.1.2.3\" }"),
                        );
                        continue;
                    }
                    view_addresses.push((vi, addrs));
                }
            }
            endpoints.push(EndpointConfig {
                name: ename,
                target,
                priority,
                weight,
                regions: eregions,
                location,
                subnets: esubnets,
                enabled: re.enabled.unwrap_or(true),
                min_child_endpoints,
                min_child_ipv4,
                min_child_ipv6,
                monitor,
                load,
                view_addresses,
            });
        }
        let burst = rp.burst.as_ref().and_then(|b| self.burst(b, &endpoints, ttl));
        let profile = ProfileConfig {
            views,
            burst,
            name: name.unwrap_or_else(Name::root),
            loc,
            method,
            ttl,
            max_answers,
            sticky,
            when_all_down,
            endpoints,
        };
        (profile, kids)
    }

    fn addresses(&mut self, v: &Spanned<toml::Value>) -> Vec<IpAddr> {
        let texts: Vec<&str> = match v.get_ref() {
            toml::Value::String(s) => vec![s.as_str()],
            toml::Value::Array(a) if a.iter().all(|x| x.is_str()) && !a.is_empty() => {
                a.iter().filter_map(|x| x.as_str()).collect()
            }
            _ => {
                self.error(
                    v,
                    "address must be an IP address or a non-empty list of them",
                    Some("address = \"192.0.2.10\" or [\"192.0.2.10\", \"2001:db8::10\"]"),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for t in texts {
            match t.parse::<IpAddr>() {
                Ok(ip) if !out.contains(&ip) => out.push(ip),
                Ok(ip) => self.error(v, format!("address {ip} is listed twice"), None),
                Err(_) => self.error(v, format!("invalid IP address {t:?}"), None),
            }
        }
        out
    }

    fn location(&mut self, v: &Spanned<toml::Value>) -> Option<Location> {
        let num = |x: &toml::Value| x.as_float().or_else(|| x.as_integer().map(|i| i as f64));
        match v.get_ref() {
            toml::Value::String(s) => {
                let l = geo::known_location(s);
                if l.is_none() {
                    self.error(v, format!("unknown location {s:?}"), Some("an Azure region name (westeurope, eastus...), a country code, or [latitude, longitude]"));
                }
                l
            }
            toml::Value::Array(a) if a.len() == 2 => match (num(&a[0]), num(&a[1])) {
                (Some(lat), Some(lon))
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    Some(Location { lat, lon })
                }
                _ => {
                    self.error(v, "location must be [latitude, longitude] in degrees", None);
                    None
                }
            },
            _ => {
                self.error(v, "location must be a region name or [latitude, longitude]", None);
                None
            }
        }
    }

    /// Nested profiles: no loops, at most MAX_DEPTH levels.
    fn check_nesting(
        &mut self,
        profiles: &[ProfileConfig],
        children: &[Vec<(usize, Spanned<String>)>],
    ) {
        fn depth(
            i: usize,
            children: &[Vec<(usize, Spanned<String>)>],
            stack: &mut Vec<usize>,
        ) -> Result<usize, Vec<usize>> {
            if let Some(pos) = stack.iter().position(|&s| s == i) {
                return Err(stack[pos..].to_vec());
            }
            stack.push(i);
            let mut d = 1;
            for (c, _) in &children[i] {
                d = d.max(1 + depth(*c, children, stack)?);
            }
            stack.pop();
            Ok(d)
        }
        for (i, kids) in children.iter().enumerate() {
            for (c, at) in kids {
                let mut stack = vec![i];
                match depth(*c, children, &mut stack) {
                    Err(cycle) => {
                        let path: Vec<String> = cycle
                            .iter()
                            .chain(std::iter::once(&cycle[0]))
                            .map(|&k| profiles[k].name.to_string())
                            .collect();
                        self.error(
                            at,
                            format!("nested profiles form a loop: {}", path.join(" -> ")),
                            None,
                        );
                    }
                    Ok(d) if d + 1 > MAX_DEPTH => {
                        self.error(
                            at,
                            format!(
                                "profiles are nested {} levels deep; the limit is {MAX_DEPTH}",
                                d + 1
                            ),
                            None,
                        );
                    }
                    Ok(_) => {}
                }
            }
        }
    }
}

impl Validator<'_> {
    fn admin(&mut self, raw: Option<RawAdmin>) -> AdminConfig {
        let default_listen: SocketAddr = "127.0.0.1:8053".parse().expect("valid");
        let Some(raw) = raw else {
            return AdminConfig { listen: Some(default_listen), token: None };
        };
        let listen = match (&raw.listen, raw.enabled) {
            (_, Some(false)) => None,
            (None, _) => Some(default_listen),
            (Some(l), _) => match l.get_ref().parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.error(
                        l,
                        format!("invalid admin listen address {:?}", l.get_ref()),
                        Some("write IP:PORT, e.g. \"127.0.0.1:8053\""),
                    );
                    None
                }
            },
        };
        let token = match (&raw.token, &raw.token_env) {
            (Some(t), None) if t.get_ref().len() < 16 => {
                self.error(
                    t,
                    "the admin token is shorter than 16 characters",
                    Some("use a long random string, e.g. from `openssl rand -hex 24`"),
                );
                None
            }
            (Some(t), None) => Some(t.get_ref().clone()),
            (None, Some(var)) => match std::env::var(var.get_ref()) {
                Ok(v) if v.len() >= 16 => Some(v),
                Ok(_) => {
                    self.error(
                        var,
                        format!("the token in ${} is shorter than 16 characters", var.get_ref()),
                        None,
                    );
                    None
                }
                Err(_) => {
                    self.error(
                        var,
                        format!("environment variable {} is not set", var.get_ref()),
                        None,
                    );
                    None
                }
            },
            (Some(t), Some(_)) => {
                self.error(t, "give token or token_env, not both", None);
                None
            }
            (None, None) => None,
        };
        if let (Some(a), None, Some(l)) = (listen, &token, &raw.listen)
            && !a.ip().is_loopback()
            && self.diags.is_empty()
        {
            self.error(
                l,
                format!("the admin API on {a} is reachable from other machines but has no token"),
                Some("set token_env = \"MERIDIAN_ADMIN_TOKEN\" (or token = \"...\"), or listen on 127.0.0.1"),
            );
        }
        AdminConfig { listen, token }
    }

    /// The endpoint's monitor: the profile's `monitor` table with the endpoint's own keys on
    /// top, `None` when neither gives one or the endpoint says `monitor = false`.
    fn monitor(
        &mut self,
        profile: Option<&Spanned<toml::Value>>,
        endpoint: Option<&Spanned<toml::Value>>,
    ) -> Option<MonitorConfig> {
        let mut table = toml::Table::new();
        let mut at = profile;
        if let Some(p) = profile {
            match p.get_ref() {
                toml::Value::Table(t) => table.extend(t.clone()),
                _ => {
                    self.error(
                        p,
                        "monitor must be a table",
                        Some("[profile.monitor] with protocol, port, path..."),
                    );
                    return None;
                }
            }
        }
        if let Some(e) = endpoint {
            match e.get_ref() {
                toml::Value::Boolean(false) => return None,
                toml::Value::Boolean(true) if profile.is_none() => {
                    self.error(
                        e,
                        "monitor = true, but the profile has no monitor to inherit",
                        Some("add a [profile.monitor] table"),
                    );
                    return None;
                }
                toml::Value::Boolean(true) => {}
                toml::Value::Table(t) => {
                    table.extend(t.clone());
                    at = Some(e);
                }
                _ => {
                    self.error(e, "an endpoint's monitor is false, true, or a table of keys overriding the profile's", None);
                    return None;
                }
            }
        }
        let at = at?;
        let fail = |v: &mut Self, msg: String, hint: Option<&str>| v.error(at, msg, hint);
        const KEYS: [&str; 10] = [
            "protocol",
            "port",
            "path",
            "interval",
            "timeout",
            "tolerated_failures",
            "recover_after",
            "expected_status",
            "headers",
            "verify_tls",
        ];
        for k in table.keys() {
            if !KEYS.contains(&k.as_str()) {
                let hint = format!("monitor keys: {}", KEYS.join(", "));
                fail(self, format!("unknown monitor key `{k}`"), Some(&hint));
            }
        }
        let protocol = match table.get("protocol").map(|v| v.as_str().map(str::to_ascii_lowercase))
        {
            None => Protocol::Http,
            Some(Some(p)) if p == "http" => Protocol::Http,
            Some(Some(p)) if p == "https" => Protocol::Https,
            Some(Some(p)) if p == "tcp" => Protocol::Tcp,
            _ => {
                fail(self, "monitor protocol must be \"http\", \"https\" or \"tcp\"".into(), None);
                Protocol::Http
            }
        };
        let int = |v: &mut Self, key: &str, range: (i64, i64), default: i64| -> i64 {
            match table.get(key) {
                None => default,
                Some(toml::Value::Integer(i)) if (range.0..=range.1).contains(i) => *i,
                Some(other) => {
                    v.error(
                        at,
                        format!("monitor {key} = {} is invalid", show(other)),
                        Some(&format!("a whole number from {} to {}", range.0, range.1)),
                    );
                    default
                }
            }
        };
        let default_port = if protocol == Protocol::Https { 443 } else { 80 };
        let port = int(self, "port", (1, 65535), default_port) as u16;
        let tolerated_failures = int(self, "tolerated_failures", (0, 9), 3) as u32;
        let recover_after = int(self, "recover_after", (1, 10), 1) as u32;
        let dur = |v: &mut Self, key: &str| -> Option<Duration> {
            let t = table.get(key)?;
            match t.as_str().and_then(parse_duration) {
                Some(d) => Some(d),
                None => {
                    v.error(
                        at,
                        format!("monitor {key} = {} is not a duration", show(t)),
                        Some("e.g. \"30s\", \"500ms\""),
                    );
                    None
                }
            }
        };
        let interval = dur(self, "interval").unwrap_or(Duration::from_secs(30));
        if interval < Duration::from_secs(1) {
            fail(self, format!("monitor interval {interval:?} is below 1s"), None);
        }
        // The default timeout is 10 s, or half the interval when that is shorter.
        let timeout =
            dur(self, "timeout").unwrap_or_else(|| Duration::from_secs(10).min(interval / 2));
        if timeout >= interval || timeout < Duration::from_millis(100) {
            fail(
                self,
                format!(
                    "monitor timeout {timeout:?} must be at least 100ms and below the interval ({interval:?})"
                ),
                None,
            );
        }
        let path = match table.get("path") {
            None => "/".to_string(),
            Some(toml::Value::String(p))
                if p.starts_with('/') && !p.contains(|c: char| c.is_control() || c == ' ') =>
            {
                p.clone()
            }
            Some(p) => {
                fail(
                    self,
                    format!(
                        "monitor path {} must start with / and contain no spaces or control characters",
                        show(p)
                    ),
                    None,
                );
                "/".into()
            }
        };
        let mut expected_status = Vec::new();
        match table.get("expected_status") {
            None => expected_status.push((200, 299)),
            Some(toml::Value::Array(list)) if (1..=8).contains(&list.len()) => {
                for item in list {
                    let range = item.as_str().and_then(|r| {
                        let (a, b) = r.split_once('-').unwrap_or((r, r));
                        let (a, b) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
                        ((100..=599).contains(&a) && (a..=599).contains(&b)).then_some((a, b))
                    });
                    match range {
                        Some(r) => expected_status.push(r),
                        None => fail(
                            self,
                            format!("expected_status entry {} is not a status range", show(item)),
                            Some("e.g. \"200-299\" or \"301\""),
                        ),
                    }
                }
            }
            Some(_) => fail(
                self,
                "expected_status must be a list of 1 to 8 ranges".into(),
                Some("e.g. [\"200-299\", \"301-302\"]"),
            ),
        }
        let mut headers = Vec::new();
        match table.get("headers") {
            None => {}
            Some(toml::Value::Table(h)) if h.len() <= 8 => {
                for (k, v) in h {
                    let ok_name = !k.is_empty()
                        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                    match v.as_str() {
                        Some(val) if ok_name && !val.contains(['\r', '\n']) => {
                            headers.push((k.clone(), val.to_string()))
                        }
                        _ => {
                            fail(self, format!("monitor header {k:?} is not a valid header"), None)
                        }
                    }
                }
            }
            Some(_) => fail(
                self,
                "monitor headers must be a table of up to 8 name = \"value\" pairs".into(),
                None,
            ),
        }
        let verify_tls = match table.get("verify_tls") {
            None => false,
            Some(toml::Value::Boolean(b)) => *b,
            Some(_) => {
                fail(self, "verify_tls must be true or false".into(), None);
                false
            }
        };
        Some(MonitorConfig {
            protocol,
            port,
            path,
            interval,
            timeout,
            tolerated_failures,
            recover_after,
            expected_status,
            headers,
            verify_tls,
        })
    }
}

impl Validator<'_> {
    fn load(&mut self, at: &Spanned<toml::Value>) -> Option<LoadConfig> {
        let Some(t) = at.get_ref().as_table() else {
            self.error(
                at,
                "load must be a table",
                Some("[profile.endpoint.load] with source and capacity"),
            );
            return None;
        };
        let keys = [
            "source",
            "capacity",
            "url",
            "json_pointer",
            "metric",
            "labels",
            "query",
            "interval",
            "half_life",
            "stale_after",
        ];
        if let Some(k) = t.keys().find(|k| !keys.contains(&k.as_str())) {
            let hint = format!("load keys: {}", keys.join(", "));
            self.error(at, format!("unknown load key `{k}`"), Some(&hint));
            return None;
        }
        let string = |k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let capacity = match t
            .get("capacity")
            .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
        {
            Some(c) if c > 0.0 && c.is_finite() => c,
            _ => {
                self.error(at, "load needs a capacity: the raw value that means 100% utilisation (a positive number)", None);
                return None;
            }
        };
        // A half-life may be anything (0 = no smoothing); polling faster than 10 times a
        // second, or calling a value stale sooner, is a mistake.
        let mut dur = |k: &str, default: u64| -> Duration {
            let min = if k == "half_life" { Duration::ZERO } else { Duration::from_millis(100) };
            match t.get(k) {
                None => Duration::from_secs(default),
                Some(v) => match v.as_str().and_then(parse_duration) {
                    Some(d) if d >= min => d,
                    _ => {
                        self.error(
                            at,
                            format!("load {k} = {} is not a duration of at least {min:?}", show(v)),
                            None,
                        );
                        Duration::from_secs(default)
                    }
                },
            }
        };
        let (interval, half_life, stale_after) =
            (dur("interval", 10), dur("half_life", 30), dur("stale_after", 60));
        let url_ok = |u: &Option<String>| u.as_deref().is_some_and(|u| u.starts_with("http://"));
        let source = match string("source").as_deref() {
            Some("push") => LoadSource::Push,
            Some("http") => {
                let url = string("url");
                let (pointer, metric) = (string("json_pointer"), string("metric"));
                if !url_ok(&url) || pointer.is_some() == metric.is_some() {
                    self.error(at, "an http load source needs url = \"http://...\" and one of json_pointer or metric", Some("json_pointer = \"/load/rps\" or metric = \"http_requests_per_second\""));
                    return None;
                }
                let labels = t
                    .get("labels")
                    .and_then(|l| l.as_table())
                    .map(|l| {
                        l.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                LoadSource::Http {
                    url: url.unwrap_or_default(),
                    json_pointer: pointer,
                    metric,
                    labels,
                }
            }
            Some("prometheus") => match (string("url"), string("query")) {
                (url @ Some(_), Some(query)) if url_ok(&url) => {
                    LoadSource::Prometheus { url: url.unwrap_or_default(), query }
                }
                _ => {
                    self.error(at, "a prometheus load source needs url = \"http://prometheus:9090\" and query = \"...\"", None);
                    return None;
                }
            },
            _ => {
                self.error(at, "load source must be \"push\", \"http\" or \"prometheus\"", None);
                return None;
            }
        };
        if stale_after <= interval && source != LoadSource::Push {
            self.error(at, format!("load stale_after ({stale_after:?}) must be longer than the interval ({interval:?})"), None);
        }
        Some(LoadConfig { source, capacity, interval, half_life, stale_after })
    }

    fn burst(
        &mut self,
        at: &Spanned<toml::Value>,
        endpoints: &[EndpointConfig],
        ttl: u32,
    ) -> Option<BurstConfig> {
        let Some(t) = at.get_ref().as_table() else {
            self.error(
                at,
                "burst must be a table",
                Some("[profile.burst] with primary, overflow and thresholds"),
            );
            return None;
        };
        let keys = [
            "primary",
            "overflow",
            "warm_at",
            "burst_at",
            "release_at",
            "target",
            "sustain",
            "cooldown",
            "interval",
            "max_step",
            "max_share",
            "sticky",
            "transition_ttl",
            "on_warm",
            "on_idle",
        ];
        if let Some(k) = t.keys().find(|k| !keys.contains(&k.as_str())) {
            let hint = format!("burst keys: {}", keys.join(", "));
            self.error(at, format!("unknown burst key `{k}`"), Some(&hint));
            return None;
        }
        let group = |v: &mut Self, key: &str| -> Vec<usize> {
            let names: Vec<String> = match t.get(key) {
                Some(toml::Value::String(s)) => vec![s.clone()],
                Some(toml::Value::Array(a)) => {
                    a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
                }
                _ => Vec::new(),
            };
            if names.is_empty() {
                v.error(at, format!("burst {key} must name one or more endpoints"), None);
            }
            names
                .iter()
                .filter_map(|n| match endpoints.iter().position(|e| &e.name == n) {
                    Some(i) => Some(i),
                    None => {
                        let known: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
                        v.error(
                            at,
                            format!("burst {key}: no endpoint {n:?}"),
                            Some(&format!("endpoints: {}", known.join(", "))),
                        );
                        None
                    }
                })
                .collect()
        };
        let primary = group(self, "primary");
        let overflow = group(self, "overflow");
        if primary.iter().any(|p| overflow.contains(p)) {
            self.error(at, "an endpoint cannot be both primary and overflow", None);
        }
        if primary.iter().any(|&i| endpoints[i].load.is_none()) {
            self.error(
                at,
                "every primary endpoint needs a load source",
                Some("add [profile.endpoint.load] to it"),
            );
        }
        let num = |v: &mut Self, key: &str, default: Option<f64>| -> f64 {
            match t.get(key).and_then(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
            {
                Some(n) if (0.0..=10.0).contains(&n) => n,
                None if default.is_some() => default.unwrap_or(0.0),
                _ => {
                    v.error(at, format!("burst {key} must be a utilisation such as 0.8"), None);
                    0.0
                }
            }
        };
        let (warm_at, burst_at, release_at) = (
            num(self, "warm_at", None),
            num(self, "burst_at", None),
            num(self, "release_at", None),
        );
        let target = num(self, "target", Some((burst_at + release_at) / 2.0));
        let (max_step, max_share) =
            (num(self, "max_step", Some(0.1)), num(self, "max_share", Some(1.0)));
        if !(warm_at < burst_at
            && release_at < burst_at
            && release_at < target
            && target <= burst_at)
        {
            self.error(
                at,
                {
                    // Rounded: a derived target such as 0.85 must not print as 0.8500000000000001.
                    let r = |x: f64| (x * 1e4).round() / 1e4;
                    format!(
                        "burst thresholds are inconsistent: warm_at {}, burst_at {}, release_at {}, target {}",
                        r(warm_at),
                        r(burst_at),
                        r(release_at),
                        r(target)
                    )
                },
                Some("need warm_at < burst_at, release_at < target <= burst_at"),
            );
        }
        if !(max_step > 0.0 && max_step <= 1.0 && max_share > 0.0 && max_share <= 1.0) {
            self.error(at, "burst max_step and max_share must be in (0, 1]", None);
        }
        let dur = |v: &mut Self, key: &str, default: u64| -> Duration {
            match t.get(key) {
                None => Duration::from_secs(default),
                Some(x) => x.as_str().and_then(parse_duration).unwrap_or_else(|| {
                    v.error(at, format!("burst {key} = {} is not a duration", show(x)), None);
                    Duration::from_secs(default)
                }),
            }
        };
        let (sustain, cooldown, interval) =
            (dur(self, "sustain", 30), dur(self, "cooldown", 120), dur(self, "interval", 5));
        if interval < Duration::from_millis(100) {
            self.error(at, "burst interval must be at least 100ms", None);
        }
        let sticky = match t.get("sticky").and_then(|x| x.as_str()) {
            None => false,
            Some("client-subnet") => true,
            Some(o) => {
                self.error(
                    at,
                    format!("unknown burst sticky mode {o:?}"),
                    Some("the only mode is \"client-subnet\""),
                );
                false
            }
        };
        let transition_ttl = t
            .get("transition_ttl")
            .and_then(|x| x.as_integer())
            .map(|x| x.clamp(0, i32::MAX as i64) as u32);
        let hook = |v: &mut Self, key: &str| -> Option<Hook> {
            let h = t.get(key)?.as_table();
            let Some(h) = h else {
                v.error(at, format!("burst {key} must be a table with url or exec"), None);
                return None;
            };
            let secret = match (
                h.get("secret").and_then(|x| x.as_str()),
                h.get("secret_env").and_then(|x| x.as_str()),
            ) {
                (Some(s), _) => Some(s.to_string()),
                (None, Some(var)) => match std::env::var(var) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        v.error(
                            at,
                            format!("burst {key}: environment variable {var} is not set"),
                            None,
                        );
                        None
                    }
                },
                (None, None) => None,
            };
            match (h.get("url").and_then(|x| x.as_str()), h.get("exec").and_then(|x| x.as_array()))
            {
                (Some(url), None) if url.starts_with("http://") => {
                    Some(Hook::Http { url: url.to_string(), secret })
                }
                (None, Some(cmd)) if !cmd.is_empty() && cmd.iter().all(|c| c.is_str()) => {
                    Some(Hook::Exec {
                        command: cmd
                            .iter()
                            .filter_map(|c| c.as_str().map(str::to_string))
                            .collect(),
                    })
                }
                _ => {
                    v.error(at, format!("burst {key} needs url = \"http://...\" or exec = [\"command\", \"arg\"]"), None);
                    None
                }
            }
        };
        let (on_warm, on_idle) = (hook(self, "on_warm"), hook(self, "on_idle"));
        // Resolvers may cache an answer for the longest TTL the profile hands out.
        let drain_wait = Duration::from_secs(ttl.max(transition_ttl.unwrap_or(0)) as u64);
        let rule = crate::burst::Rule {
            warm_at,
            burst_at,
            release_at,
            target,
            sustain,
            cooldown,
            max_step,
            max_share,
            drain_wait,
        };
        Some(BurstConfig {
            primary,
            overflow,
            rule,
            interval,
            sticky,
            transition_ttl,
            on_warm,
            on_idle,
        })
    }
}

/// A TOML value as written, for messages (the `toml` crate's printer is not compiled in).
fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) => "an array".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// A name from the configuration: absolute with a trailing dot; without one, absolute if that
/// lies inside a served zone, else relative to the only zone. Errors are (message, hint).
fn resolve_name(text: &str, zones: &[ZoneConfig]) -> Result<Name, (String, Option<String>)> {
    let bad = |e: crate::name::NameError| (format!("invalid name {text:?}: {e}"), None);
    if text.ends_with('.') {
        return Name::parse(text, None).map(|n| n.to_lowercase()).map_err(bad);
    }
    let absolute = Name::parse(&format!("{text}."), None).map_err(bad)?.to_lowercase();
    if zones.iter().any(|z| absolute.is_within(&z.name)) {
        return Ok(absolute);
    }
    match zones {
        [only] => Name::parse(text, Some(&only.name)).map(|n| n.to_lowercase()).map_err(bad),
        _ => Err((
            format!("{text:?} is not inside any served zone"),
            Some("write the name absolute, with a trailing dot".into()),
        )),
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
    pub status: crate::policy::Status,
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
            "Online" => crate::policy::Status::Online,
            "Degraded" => crate::policy::Status::Degraded,
            "Disabled" => crate::policy::Status::Disabled,
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
