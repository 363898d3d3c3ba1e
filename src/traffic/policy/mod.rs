//! Routing methods: which endpoint(s) of a profile answer this client now.
//!
//! Everything here is a pure function of the compiled profiles, the live [`Signals`], the
//! client and a caller-owned RNG: no I/O, no clock, no allocation, no locks. Tables are
//! precomputed when the snapshot is built (priority order, geographic map sorted by region,
//! subnet rules), so a decision is a few comparisons.
//!
//! Semantics follow Azure Traffic Manager; `README.md` documents each method and where Meridian
//! goes beyond it.

mod compile;
mod methods;
mod rng;
mod signals;
mod spill;
#[cfg(test)]
mod tests;

pub use compile::{compile, compile_geo};
pub use rng::{Rng, stable_hash};
pub use signals::Signals;

use crate::dns::name::Name;
use crate::live::EndpointKey;
use crate::traffic::geo::{Geo, Location, Region};
use methods::{client_view, geographic, performance, subnet, weighted};
use spill::{overflow_pick, spill, sticky_unit};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub type ProfileId = u32;
pub type EndpointId = u32;

/// The most endpoints one answer can carry (multivalue's `max_answers` ceiling).
pub const MAX_SELECTED: usize = 10;
/// `Selection::views` for an endpoint answered without a view.
pub const NO_VIEW: u8 = u8::MAX;

pub use crate::config::{AllDown, MAX_DEPTH, Method};
pub use crate::live::{Override, Status};
pub use crate::traffic::geo::{Cidr, common_prefix};

/// What an endpoint answers with.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Addresses { v4: Box<[Ipv4Addr]>, v6: Box<[Ipv6Addr]> },
    Cname(Name),
    Profile(ProfileId),
}

/// A view's index and the IPv4 and IPv6 addresses an endpoint answers to that view's clients.
pub type ViewTarget = (u8, Box<[Ipv4Addr]>, Box<[Ipv6Addr]>);

/// A compiled endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub profile: ProfileId,
    pub target: Target,
    pub priority: u32,
    pub weight: u32,
    pub regions: Box<[Region]>,
    pub location: Option<Location>,
    pub subnets: Box<[Cidr]>,
    /// Disabled in the configuration.
    pub enabled: bool,
    pub min_child_endpoints: u32,
    pub min_child_ipv4: u32,
    pub min_child_ipv6: u32,
    /// Per view (index in the profile's views): the addresses answered to that view's clients.
    pub view_targets: Box<[ViewTarget]>,
    /// How the endpoint is probed; `None`: not monitored (always served).
    pub monitor: Option<crate::config::MonitorConfig>,
    /// Where its load comes from, if anywhere.
    pub load: Option<crate::config::LoadConfig>,
    /// The endpoint's identity across reloads (health, overrides, loads, counters).
    pub key: EndpointKey,
    /// A stable hash of `key`, the same on every instance, for sticky choices.
    pub key_hash: u64,
}

/// A compiled profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: Name,
    pub method: Method,
    pub ttl: u32,
    pub endpoints: Box<[EndpointId]>,
    pub when_all_down: AllDown,
    pub max_answers: u8,
    pub sticky: bool,
    /// This profile or a profile nested below it needs the client's GeoIP record.
    pub needs_geo: bool,
    pub(crate) by_priority: Box<[EndpointId]>,
    /// Sorted by region, for binary search.
    pub(crate) geo_map: Box<[(Region, EndpointId)]>,
    pub(crate) subnet_rules: Box<[(Cidr, EndpointId)]>,
    pub(crate) subnet_fallback: Option<EndpointId>,
    /// The cloud-bursting rule, if the profile has one.
    pub burst: Option<ProfileBurst>,
    /// Split-horizon views: each view's client networks.
    pub views: Box<[Box<[Cidr]>]>,
    /// Each view's name, as configured (for `explain`).
    pub view_names: Box<[Box<str>]>,
    /// What this profile derives from each GeoIP record, computed at snapshot build.
    pub(crate) by_record: ByRecord,
    /// A sticky profile's rendezvous inputs, in `endpoints` order (empty otherwise): read
    /// side by side rather than from each endpoint, and with `1/weight` divided out at build.
    pub(crate) sticky_keys: Box<[StickyKey]>,
}

/// One endpoint's part in a sticky (rendezvous) choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct StickyKey {
    /// [`Endpoint::key_hash`], and its mix: the inner half of an IPv4 client prefix's sticky
    /// hash, computed here once.
    pub seed: u64,
    pub seed_mixed: u64,
    pub weight: f64,
    /// `1.0 / weight`, as the query path would compute it.
    pub inv_weight: f64,
}

/// A geographic or performance profile's decision inputs per distinct GeoIP record
/// (`GeoInfo::value`), so that a query does a table read instead of region searches or
/// great-circle distances. Empty without a database, or when a table would be too large
/// (then the query computes them, with the same result).
#[derive(Clone, Default, PartialEq)]
pub struct ByRecord {
    /// Geographic: for each record, the index in `geo_map` of the most specific region it
    /// falls in, or [`NO_PICK`].
    pub(crate) pick: Box<[u32]>,
    /// Performance: for each record, the distance in km to each of the profile's endpoints
    /// (in `endpoints` order; NaN for an endpoint without a location).
    pub(crate) distances: Box<[f64]>,
    /// Performance: for each record, the positions (in `endpoints`) of the endpoints with a
    /// location, nearest first, then [`NEAREST_END`] to fill the row; or [`NEAREST_SCAN`] first
    /// when two of them are within the kilometre that makes a tie, where the choice depends on
    /// weights and on which endpoints are available, so the query scans the distances.
    pub(crate) nearest: Box<[u16]>,
}

pub(crate) const NO_PICK: u32 = u32::MAX;
pub(crate) const NEAREST_END: u16 = u16::MAX;
pub(crate) const NEAREST_SCAN: u16 = u16::MAX - 1;

impl std::fmt::Debug for ByRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByRecord")
            .field("pick", &self.pick.len())
            .field("distances", &self.distances.len())
            .field("nearest", &self.nearest.len())
            .finish()
    }
}

/// A profile's burst rule: what `select` needs, and what the burst task runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileBurst {
    pub primary: Box<[EndpointId]>,
    pub overflow: Box<[EndpointId]>,
    /// Which clients spill is chosen by client-prefix hash (the same clients on every instance).
    pub sticky: bool,
    pub transition_ttl: Option<u32>,
    /// The lifecycle's thresholds and timings, and how often the burst task ticks.
    pub rule: crate::traffic::burst::Rule,
    pub interval: std::time::Duration,
    pub on_warm: Option<crate::config::Hook>,
    pub on_idle: Option<crate::config::Hook>,
    /// Decided as one fleet from the shared Prometheus (`traffic::replay`).
    pub fleet: Option<crate::config::FleetConfig>,
}

/// Every profile and endpoint of a snapshot, by dense id.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub profiles: Box<[Profile]>,
    pub endpoints: Box<[Endpoint]>,
    pub(crate) by_key: std::collections::HashMap<EndpointKey, EndpointId>,
    pub(crate) by_name: std::collections::HashMap<Name, ProfileId>,
}

impl Policies {
    /// The endpoint with this key, in this snapshot.
    pub fn endpoint_by_key(&self, key: &EndpointKey) -> Option<EndpointId> {
        self.by_key.get(key).copied()
    }

    /// A profile by its (lowercased, absolute) name.
    pub fn profile_id(&self, name: &Name) -> Option<ProfileId> {
        self.by_name.get(name).copied()
    }

    /// A profile by name as people write it (absolute, any case, trailing dot optional).
    pub fn profile_by_name(&self, name: &str) -> Option<ProfileId> {
        let n = Name::parse(&format!("{}.", name.trim_end_matches('.')), None).ok()?;
        self.profile_id(&n.to_lowercase())
    }

    /// An endpoint of profile `pid` by name.
    pub fn endpoint_in(&self, pid: ProfileId, name: &str) -> Option<EndpointId> {
        self.profiles[pid as usize]
            .endpoints
            .iter()
            .copied()
            .find(|&id| self.endpoints[id as usize].name == name)
    }
}

/// Whether an endpoint is enabled: the operator's override if any, else the configuration.
#[inline]
pub fn enabled(p: &Policies, id: EndpointId, signals: &Signals) -> bool {
    match signals.admin(id) {
        Override::Disabled => false,
        Override::Enabled => true,
        Override::None => p.endpoints[id as usize].enabled,
    }
}

/// Who is asking: the address that stands for the client (the ECS address when the query had
/// one, else the packet's source) and, when a method needs it, its GeoIP record.
#[derive(Debug, Clone, Copy)]
pub struct Client<'g> {
    pub addr: IpAddr,
    pub geo: Option<Geo<'g>>,
}

/// How a decision ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answer,
    NoData,
    ServFail,
}

/// The endpoints chosen for one answer, in a fixed-capacity array owned by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    pub endpoints: [EndpointId; MAX_SELECTED],
    /// The view each chosen endpoint answers for (`NO_VIEW` for none).
    pub views: [u8; MAX_SELECTED],
    pub len: usize,
    /// How many leading bits of the client address the decision depended on (ECS scope).
    pub scope: u8,
    pub outcome: Outcome,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            endpoints: [0; MAX_SELECTED],
            views: [NO_VIEW; MAX_SELECTED],
            len: 0,
            scope: 0,
            outcome: Outcome::Answer,
        }
    }
}

impl Selection {
    pub fn chosen(&self) -> &[EndpointId] {
        &self.endpoints[..self.len]
    }

    fn push(&mut self, id: EndpointId, view: Option<u8>) {
        if self.len < MAX_SELECTED {
            self.endpoints[self.len] = id;
            self.views[self.len] = view.unwrap_or(NO_VIEW);
            self.len += 1;
        }
    }
}

/// Receives a description of each step of a decision, for `meridian explain`. Serving uses
/// `()`, whose methods do nothing and whose closures are never called, so tracing costs nothing
/// on the hot path.
pub trait Trace {
    /// Whether this is a real query, to be counted in metrics (explanations are not).
    const COUNTS: bool = true;
    /// Whether notes are kept: a decision then also describes the endpoints it did not need
    /// to look at.
    const TRACES: bool = false;

    #[inline]
    fn note(&mut self, _depth: usize, _line: impl FnOnce() -> String) {}
}

impl Trace for () {}

/// Traces nothing and counts nothing: for answers worked out for someone other than a
/// client (a zone transfer's copy of a traffic-managed name's answer).
#[derive(Debug)]
pub struct Uncounted;

impl Trace for Uncounted {
    const COUNTS: bool = false;
}

/// Collects trace lines, indented by nesting depth.
impl Trace for Vec<String> {
    const COUNTS: bool = false;
    const TRACES: bool = true;

    fn note(&mut self, depth: usize, line: impl FnOnce() -> String) {
        self.push(format!("{}{}", "  ".repeat(depth), line()));
    }
}

/// Chooses the endpoints of profile `pid` for `client`, filling `sel`.
pub fn select<T: Trace>(
    p: &Policies,
    pid: ProfileId,
    signals: &Signals,
    client: &Client<'_>,
    rng: &mut Rng,
    sel: &mut Selection,
    trace: &mut T,
) {
    *sel = Selection::default();
    select_in(&mut Decision { p, signals, client, rng, sel, trace }, pid, 0);
}

/// One decision in progress: what it reads (the compiled tables, the live signals, the client)
/// and what it writes (the RNG, the selection, the trace). Handed by `&mut` down the chain of
/// nested profiles, so each step takes it and its own few arguments.
pub(super) struct Decision<'a, T> {
    pub(super) p: &'a Policies,
    pub(super) signals: &'a Signals,
    pub(super) client: &'a Client<'a>,
    pub(super) rng: &'a mut Rng,
    pub(super) sel: &'a mut Selection,
    pub(super) trace: &'a mut T,
}

/// Whether an endpoint can be answered with: enabled, its status serves, and for a nested
/// profile, enough of the child's endpoints are available.
#[inline]
pub fn available(p: &Policies, id: EndpointId, signals: &Signals, depth: usize) -> bool {
    let e = &p.endpoints[id as usize];
    if !signals.endpoint(id).serves(e.enabled) {
        return false;
    }
    match e.target {
        Target::Profile(_) => child_available(p, id, signals, depth),
        _ => true,
    }
}

/// Whom a decision in one profile may answer with: [`Eligible::fits`], the endpoints that
/// answer for the client's view (split horizon), and [`Eligible::ok`], those of them that are
/// available, or with `force` (every one down and the profile serving them all) enabled. A
/// type whose checks are inlined rather than a pair of closures: every method asks once per
/// endpoint it looks at, and the closures were kept out of line, a call per ask that cost
/// as much as the check itself.
#[derive(Clone, Copy)]
pub(super) struct Eligible<'a> {
    p: &'a Policies,
    signals: &'a Signals,
    view: Option<u8>,
    force: bool,
    depth: usize,
}

impl Eligible<'_> {
    /// The endpoint answers for the client's view (a nested profile is asked in its own).
    #[inline(always)]
    pub(super) fn fits(&self, id: EndpointId) -> bool {
        let e = &self.p.endpoints[id as usize];
        self.view.is_none_or(|v| {
            matches!(e.target, Target::Profile(_)) || e.view_targets.iter().any(|t| t.0 == v)
        })
    }

    /// The endpoint fits and may be answered with now.
    #[inline(always)]
    pub(super) fn ok(&self, id: EndpointId) -> bool {
        let (p, signals) = (self.p, self.signals);
        self.fits(id)
            && if self.force {
                enabled(p, id, signals)
            } else {
                available(p, id, signals, self.depth)
            }
    }
}

/// For an enabled, serving endpoint that is a nested profile: whether enough of the child's
/// endpoints are available. Out of line, so that the common case above inlines.
#[inline(never)]
fn child_available(p: &Policies, id: EndpointId, signals: &Signals, depth: usize) -> bool {
    let e = &p.endpoints[id as usize];
    let Target::Profile(child) = e.target else { return true };
    if depth >= MAX_DEPTH {
        return false;
    }
    let enough = |all: u32, v4: u32, v6: u32| {
        all >= e.min_child_endpoints && v4 >= e.min_child_ipv4 && v6 >= e.min_child_ipv6
    };
    let (mut all, mut v4, mut v6) = (0u32, 0u32, 0u32);
    if enough(all, v4, v6) {
        return true;
    }
    for &c in p.profiles[child as usize].endpoints.iter() {
        if available(p, c, signals, depth + 1) {
            all += 1;
            if let Target::Addresses { v4: a, v6: b } = &p.endpoints[c as usize].target {
                v4 += (!a.is_empty()) as u32;
                v6 += (!b.is_empty()) as u32;
            }
            // The counts only grow: once they are enough, the rest cannot change the answer
            // (the default minimum of one child stops at the first available one).
            if enough(all, v4, v6) {
                return true;
            }
        }
    }
    false
}

fn select_in<T: Trace>(d: &mut Decision<'_, T>, pid: ProfileId, depth: usize) {
    let (p, signals, client) = (d.p, d.signals, d.client);
    let profile = &p.profiles[pid as usize];
    d.trace.note(depth, || {
        format!("profile {} ({}, ttl {})", profile.name, profile.method.as_str(), profile.ttl)
    });

    // Split horizon: a client in a view is only offered endpoints that answer for it.
    // Whether there are views is checked here, not in `client_view`, so that a profile
    // without them (most) does not copy the client address out as an argument.
    let view =
        if profile.views.is_empty() { None } else { client_view(profile, client.addr, d.sel) };
    let mut who = Eligible { p, signals, view, force: false, depth };
    match view {
        Some(v) => d.trace.note(depth, || {
            let name = profile.view_names.get(v as usize).map_or("?", |n| n);
            format!("split horizon: client is in view {name}")
        }),
        None if !profile.views.is_empty() => {
            d.trace.note(depth, || "split horizon: client is in no view; public answers".into())
        }
        None => {}
    }
    // Traffic Manager's "all degraded" rule: with no endpoint available, every enabled one
    // counts as available (`who.force`), or the profile answers NODATA or SERVFAIL. It only
    // matters when the method picks nothing from the available endpoints (a pick means one
    // was available), so serving asks it then and not before: most answers look at one or
    // two endpoints, not all of them. An explanation lists every endpoint first, and so
    // knows up front.
    if T::TRACES {
        let (any_available, any_enabled) = describe_endpoints(d, profile, depth, &who);
        if !any_available {
            if !all_down(d, profile, depth, any_enabled) {
                return;
            }
            who.force = true;
        }
    }
    // Multivalue rotates its starting point so that clients limited to fewer answers than
    // there are endpoints still spread over all of them. Drawn once, before the loop, so that
    // a second pass answers as an explanation (which knows up front) does.
    let n = profile.endpoints.len();
    let start = match profile.method {
        Method::MultiValue if n > 0 => d.rng.below(n as u64) as usize,
        _ => 0,
    };
    let scope = d.sel.scope;
    let pick = loop {
        let pick = match profile.method {
            Method::MultiValue => {
                multivalue(d, profile, depth, start, view, &who);
                if d.sel.len > 0 {
                    return;
                }
                None
            }
            _ => method_pick(d, profile, depth, &who),
        };
        if pick.is_some() || who.force {
            break pick;
        }
        let (mut any_available, mut any_enabled) = (false, false);
        for &id in profile.endpoints.iter().filter(|&&id| who.fits(id)) {
            any_available |= available(p, id, signals, depth);
            any_enabled |= enabled(p, id, signals);
        }
        if any_available {
            break None;
        }
        // What the method narrowed the scope to does not matter to an answer that no
        // endpoint is up (and an explanation never ran the method).
        d.sel.scope = scope;
        if !all_down(d, profile, depth, any_enabled) {
            return;
        }
        who.force = true;
    };
    if profile.method == Method::MultiValue {
        // Even with every enabled endpoint counted as available, there was nothing to answer.
        d.sel.outcome = Outcome::NoData;
        return;
    }
    let pick = match (&profile.burst, pick) {
        (Some(b), Some(id)) => Some(spill(d, pid, b, id, depth, &who)),
        (Some(b), None) => {
            // Nothing the method could pick; a Degraded primary still sends everything to an
            // available overflow endpoint, within the geo-fence.
            overflow_pick(d, pid, b, depth, b.sticky.then(|| sticky_unit(client.addr)), &who)
        }
        (None, pick) => pick,
    };
    let Some(id) = pick else {
        d.sel.outcome = Outcome::NoData;
        return;
    };
    let e = &p.endpoints[id as usize];
    match e.target {
        Target::Profile(child) => {
            d.trace.note(depth, || format!("chose nested endpoint {}: descending", e.name));
            select_in(d, child, depth + 1);
        }
        _ => {
            d.trace.note(depth, || format!("chose {}", e.name));
            d.sel.push(id, view);
        }
    }
}

/// The method's pick among the endpoints `who` accepts (every method but multivalue, which
/// answers with several).
fn method_pick<T: Trace>(
    d: &mut Decision<'_, T>,
    profile: &Profile,
    depth: usize,
    who: &Eligible<'_>,
) -> Option<EndpointId> {
    let p = d.p;
    match profile.method {
        Method::Priority => {
            let pick = profile.by_priority.iter().copied().find(|&id| who.ok(id));
            d.trace.note(depth, || match pick {
                Some(id) => format!(
                    "priority: lowest available priority is {} ({})",
                    p.endpoints[id as usize].priority, p.endpoints[id as usize].name
                ),
                None => "priority: nothing available".into(),
            });
            pick
        }
        Method::Weighted => weighted(d, profile, depth, who),
        Method::Geographic => geographic(d, profile, depth, who),
        // No location for the client: fall back to a weighted choice.
        Method::Performance => {
            performance(d, profile, depth, who).or_else(|| weighted(d, profile, depth, who))
        }
        Method::Subnet => subnet(d, profile, depth, who),
        Method::MultiValue => None,
    }
}

/// Multivalue: every endpoint `who` accepts, up to the profile's `max_answers`, into the
/// selection, starting at the `start`th.
fn multivalue<T: Trace>(
    d: &mut Decision<'_, T>,
    profile: &Profile,
    depth: usize,
    start: usize,
    view: Option<u8>,
    who: &Eligible<'_>,
) {
    let n = profile.endpoints.len();
    for k in 0..n {
        let id = profile.endpoints[(start + k) % n];
        if d.sel.len < profile.max_answers as usize && who.ok(id) {
            d.sel.push(id, view);
        }
    }
    let p = d.p;
    d.trace.note(depth, || {
        format!(
            "multivalue: {} endpoint(s), starting at {}",
            d.sel.len, p.endpoints[profile.endpoints[start] as usize].name
        )
    });
}

/// For an explanation: each endpoint the client may be answered with, available or not and
/// why. Returns whether any is available, and whether any is enabled.
fn describe_endpoints<T: Trace>(
    d: &mut Decision<'_, T>,
    profile: &Profile,
    depth: usize,
    who: &Eligible<'_>,
) -> (bool, bool) {
    let (p, signals) = (d.p, d.signals);
    let (mut any_available, mut any_enabled) = (false, false);
    for &id in profile.endpoints.iter().filter(|&&id| who.fits(id)) {
        let e = &p.endpoints[id as usize];
        let ok = available(p, id, signals, depth);
        let on = enabled(p, id, signals);
        any_available |= ok;
        any_enabled |= on;
        d.trace.note(depth + 1, || {
            let why = if !on {
                match signals.admin(id) {
                    Override::Disabled => "disabled by an operator".to_string(),
                    _ => "disabled in configuration".to_string(),
                }
            } else if !signals.status(id).serves() {
                format!("status {}", signals.status(id).as_str())
            } else if matches!(e.target, Target::Profile(_)) && !ok {
                "nested profile below its minimum of available endpoints".to_string()
            } else {
                format!("status {}", signals.status(id).as_str())
            };
            // Health by consensus: the fleet's probes decided, whatever this instance's say.
            let fleet = e.monitor.as_ref().filter(|m| m.consensus).map(|_| {
                let live = signals.endpoint(id).detail();
                let own = live.health.verdict.map_or("none yet", |s| s.as_str());
                match &live.consensus {
                    Some(c) => format!(
                        "; by the fleet's consensus: {:.0} % of instances see it up (this instance's own probes: {own})",
                        c.fraction * 100.0
                    ),
                    None => format!("; consensus: no fleet report, this instance's own probes decide ({own})"),
                }
            });
            format!(
                "endpoint {}: {} ({why}{})",
                e.name,
                if ok { "available" } else { "unavailable" },
                fleet.unwrap_or_default()
            )
        });
    }
    (any_available, any_enabled)
}

/// No endpoint is available: whether to go on as if every enabled endpoint were (`serve-all`
/// with one enabled), or else the outcome the profile asks for, in the selection.
fn all_down<T: Trace>(
    d: &mut Decision<'_, T>,
    profile: &Profile,
    depth: usize,
    any_enabled: bool,
) -> bool {
    match profile.when_all_down {
        AllDown::ServeAll if any_enabled => {
            d.trace.note(depth, || "no endpoint available: serving as if all enabled endpoints were (when_all_down = serve-all)".into());
            true
        }
        AllDown::ServFail => {
            d.trace.note(depth, || {
                "no endpoint available: SERVFAIL (when_all_down = servfail)".into()
            });
            d.sel.outcome = Outcome::ServFail;
            false
        }
        _ => {
            d.trace.note(depth, || "no endpoint available: NODATA".into());
            d.sel.outcome = Outcome::NoData;
            false
        }
    }
}
