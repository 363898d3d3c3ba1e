//! The validated configuration: plain data, names resolved, defaults applied. This is what
//! leaves the `config` module; no TOML or serde type does.

use crate::diag::Loc;
use crate::dns::name::Name;
use crate::traffic::geo::{Cidr, Location, Region};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

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
    pub fleet: Option<FleetShared>,
    /// TSIG keys (`[[key]]`).
    pub keys: Vec<crate::dns::tsig::Key>,
}

/// `[fleet]`: the Prometheus the instances of a fleet share (it scrapes every instance), for
/// health by consensus.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetShared {
    pub url: String,
    pub client: ClientConfig,
    /// Label matchers selecting the fleet's own series (or empty).
    pub matchers: String,
    /// How far behind the wall clock the instant read is.
    pub lag: Duration,
}

/// `[admin]`: the HTTP admin API, metrics and status page.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    /// `None` when the admin API is turned off.
    pub listen: Option<SocketAddr>,
    /// Bearer token required on every request but `/healthz` and `/readyz`; mandatory when
    /// `listen` is not a loopback address.
    pub token: Option<String>,
    /// Serve HTTPS with this PEM certificate chain and key (read again when they change).
    pub tls: Option<(PathBuf, PathBuf)>,
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
    /// Health by consensus (`consensus = "prometheus"`): the fleet's probe results decide.
    pub consensus: bool,
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
    /// On SIGTERM/SIGINT, how long `/readyz` answers 503 while DNS and the admin API keep
    /// serving, so that a load balancer takes the instance out before it stops.
    pub drain: Duration,
    /// Honour EDNS Client Subnet (RFC 7871) in queries.
    pub ecs: bool,
    /// Reload when the configuration, a zone file or the GeoIP database changes.
    pub watch: bool,
    /// Response rate limiting for UDP, when configured.
    pub rrl: Option<crate::dns::rrl::RrlConfig>,
    /// The fraction of queries logged (target `meridian::query`); 0 logs none.
    pub query_log: f64,
    /// The NSID (RFC 5001) answered to queries that ask for it; none unless set.
    pub nsid: Option<String>,
    /// The TXT answered to `id.server` and `hostname.bind` in class CH; none unless set.
    pub identity: Option<String>,
    /// DNS cookies (RFC 7873, RFC 9018), when a secret is configured.
    pub cookies: Option<crate::dns::cookie::CookieKeys>,
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
    /// How the source's URL is called (TLS, credentials, headers).
    pub client: ClientConfig,
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
    pub rule: crate::traffic::burst::Rule,
    pub interval: Duration,
    pub sticky: bool,
    pub transition_ttl: Option<u32>,
    pub on_warm: Option<Hook>,
    pub on_idle: Option<Hook>,
    /// Decide as one fleet from the shared Prometheus (`[profile.burst.fleet]`).
    pub fleet: Option<FleetConfig>,
}

/// How a fleet of instances decides a burst as one: from the Prometheus every primary
/// endpoint's load comes from, at aligned instants, by replaying the lifecycle over `window`.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// How far back each replay starts.
    pub window: Duration,
    /// How far behind the wall clock the instant decided is (scrapes still arriving).
    pub lag: Duration,
    /// Label matchers selecting the fleet's own series, e.g. `job="meridian"` (or empty).
    pub matchers: String,
    /// The Prometheus server, and how it is called (the primary's load source's).
    pub url: String,
    pub client: ClientConfig,
}

/// A lifecycle webhook: an HTTP POST, or a local command given the same JSON on stdin.
#[derive(Debug, Clone, PartialEq)]
pub enum Hook {
    Http { url: String, secret: Option<String>, client: ClientConfig },
    Exec { command: Vec<String> },
}

/// How Meridian calls an HTTP(S) URL of the operator's (webhooks, load sources): which
/// certificates it trusts and presents, and the credentials and headers it sends. Secrets
/// are read when the configuration is loaded, from an environment variable or a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// PEM file of extra certificate authorities, trusted beside the bundled web roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain and key presented when the server asks (mTLS).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Verify the server's certificate and name (the default; these calls carry secrets).
    pub verify_tls: bool,
    pub auth: Option<Auth>,
    /// Extra request headers, e.g. `x-functions-key`.
    pub headers: Vec<(String, String)>,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            ca_file: None,
            client_cert: None,
            verify_tls: true,
            auth: None,
            headers: Vec::new(),
        }
    }
}

/// Credentials sent with every request.
#[derive(Clone, PartialEq)]
pub enum Auth {
    Bearer(String),
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    // Never print a secret, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(…)"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}, …)"),
        }
    }
}

/// What an endpoint answers with. A nested profile is referred to by its index in
/// `Config::profiles`.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetConfig {
    Addresses(Vec<IpAddr>),
    Cname(Name),
    Profile(usize),
}

/// `[[zone]]`: a zone served from a master file, or transferred from primaries (the file then
/// holds the last good copy).
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneConfig {
    pub name: Name,
    /// Resolved against the directory of the configuration file.
    pub file: PathBuf,
    /// Where `file` is written in the configuration, for errors about the file itself.
    pub file_loc: Loc,
    pub transfer: Transfer,
    /// Set when the zone comes from primaries (secondary mode).
    pub secondary: Option<Secondary>,
}

/// Where a secondary zone is transferred from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Secondary {
    /// Asked in this order; the first that answers is used.
    pub primaries: Vec<std::net::SocketAddr>,
    /// When set, every request is signed with this TSIG key and every answer (and NOTIFY)
    /// must be signed with it.
    pub key: Option<Name>,
}

/// Who may transfer a zone out (AXFR/IXFR), and whom to NOTIFY when its serial changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Transfers are allowed from these networks only (none: no transfers).
    pub allow: Vec<crate::traffic::geo::Cidr>,
    /// When set, a transfer must be signed with this TSIG key, and NOTIFYs are signed with it.
    pub key: Option<Name>,
    /// Secondaries told of a new serial (RFC 1996).
    pub notify: Vec<std::net::SocketAddr>,
}

/// The deepest chain of nested profiles.
pub const MAX_DEPTH: usize = 10;

/// How a profile picks its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Priority,
    Weighted,
    Geographic,
    Performance,
    MultiValue,
    Subnet,
}

impl Method {
    pub const NAMES: [&'static str; 6] =
        ["priority", "weighted", "geographic", "performance", "multivalue", "subnet"];

    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "priority" => Method::Priority,
            "weighted" => Method::Weighted,
            "geographic" => Method::Geographic,
            "performance" => Method::Performance,
            "multivalue" => Method::MultiValue,
            "subnet" => Method::Subnet,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether the decision depends on where the client is (GeoIP).
    pub fn uses_geo(self) -> bool {
        matches!(self, Method::Geographic | Method::Performance)
    }
}

/// What a profile answers when none of its endpoints is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllDown {
    /// Traffic Manager's rule: act as if every enabled endpoint were available.
    ServeAll,
    NoData,
    ServFail,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5353";
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;
/// The largest `udp_payload` accepted; the UDP workers size their answer buffers by it.
pub const MAX_UDP_PAYLOAD: u16 = 4096;
