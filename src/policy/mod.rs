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
#[cfg(test)]
mod tests;

pub use compile::compile;

use crate::geo::{self, GeoInfo, Location, Region};
use crate::live::{EndpointKey, EndpointLive, ProfileLive};
use crate::name::Name;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

pub type ProfileId = u32;
pub type EndpointId = u32;

/// The most endpoints one answer can carry (multivalue's `max_answers` ceiling).
pub const MAX_SELECTED: usize = 10;
/// `Selection::views` for an endpoint answered without a view.
pub const NO_VIEW: u8 = u8::MAX;

pub use crate::config::{AllDown, MAX_DEPTH, Method};
pub use crate::geo::{Cidr, common_prefix};
pub use crate::live::{Override, Status};

/// The live state a snapshot's decisions read: for each endpoint (by id) and each profile (by
/// id), the one shared object that holds it (see [`crate::live`]). Writers (health probes, the
/// admin API, burst tasks) store into those objects; every query loads. Relaxed ordering is
/// enough: each value stands alone, and a query seeing a change one query late is fine.
#[derive(Debug)]
pub struct Signals {
    endpoints: Box<[Arc<EndpointLive>]>,
    profiles: Box<[Arc<ProfileLive>]>,
}

impl Signals {
    /// Fresh signals for `profiles` profiles and one endpoint per `initial` status (tests and
    /// offline tools; serving snapshots use [`Signals::from_parts`]).
    pub fn new(profiles: usize, initial: impl IntoIterator<Item = Status>) -> Signals {
        let endpoints = initial.into_iter().map(|s| Arc::new(EndpointLive::new(s))).collect();
        let profiles = (0..profiles).map(|_| Arc::default()).collect();
        Signals { endpoints, profiles }
    }

    /// Signals over existing live objects, indexed like the snapshot's endpoints and profiles.
    pub fn from_parts(
        endpoints: Box<[Arc<EndpointLive>]>,
        profiles: Box<[Arc<ProfileLive>]>,
    ) -> Signals {
        Signals { endpoints, profiles }
    }

    /// The live object of endpoint `id`.
    #[inline]
    pub fn endpoint(&self, id: EndpointId) -> &Arc<EndpointLive> {
        &self.endpoints[id as usize]
    }

    /// The live object of profile `pid`.
    #[inline]
    pub fn profile(&self, pid: ProfileId) -> &Arc<ProfileLive> {
        &self.profiles[pid as usize]
    }

    /// Publishes a profile's burst state and share.
    pub fn set_burst(&self, profile: ProfileId, state: crate::burst::State, share: f64) {
        self.profile(profile).set_burst(state, share);
    }

    #[inline]
    pub fn burst_state(&self, profile: ProfileId) -> crate::burst::State {
        self.profile(profile).burst_state()
    }

    /// The share of answers spilled to overflow, 0.0–1.0.
    #[inline]
    pub fn burst_share(&self, profile: ProfileId) -> f64 {
        self.profile(profile).burst_share()
    }

    #[inline]
    pub fn admin(&self, id: EndpointId) -> Override {
        self.endpoint(id).admin()
    }

    pub fn set_admin(&self, id: EndpointId, o: Override) {
        self.endpoint(id).set_admin(o);
    }

    #[inline]
    pub fn status(&self, id: EndpointId) -> Status {
        self.endpoint(id).status()
    }

    pub fn set_status(&self, id: EndpointId, status: Status) {
        self.endpoint(id).set_status(status);
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

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
    /// Split-horizon views: each view's client networks (names are in the configuration).
    pub views: Box<[Box<[Cidr]>]>,
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
    pub rule: crate::burst::Rule,
    pub interval: std::time::Duration,
    pub on_warm: Option<crate::config::Hook>,
    pub on_idle: Option<crate::config::Hook>,
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
pub struct Client {
    pub addr: IpAddr,
    pub geo: Option<GeoInfo>,
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

    #[inline]
    fn note(&mut self, _depth: usize, _line: impl FnOnce() -> String) {}
}

impl Trace for () {}

/// Collects trace lines, indented by nesting depth.
impl Trace for Vec<String> {
    const COUNTS: bool = false;

    fn note(&mut self, depth: usize, line: impl FnOnce() -> String) {
        self.push(format!("{}{}", "  ".repeat(depth), line()));
    }
}

/// A small, fast PRNG (wyrand), one per worker, passed by `&mut` so that decisions are
/// reproducible from a seed in tests and in `explain`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded from the clock and a per-call counter, for serving.
    pub fn from_entropy() -> Rng {
        use std::sync::atomic::AtomicU64;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(mix(t ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u64
    }

    /// A uniform draw in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform draw in `0..n` (n > 0).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// A stable 64-bit hash (FNV-1a then a finaliser): the same on every machine and version, so
/// every instance makes the same sticky choice.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The client prefix sticky choices hash: /24 for IPv4, /56 for IPv6 (what resolvers send in
/// ECS), and its length.
#[inline]
fn sticky_prefix(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => ((u32::from(a) & 0xffff_ff00) as u128, 24),
        IpAddr::V6(a) => (u128::from(a) & !((1u128 << 72) - 1), 56),
    }
}

/// Chooses the endpoints of profile `pid` for `client`, filling `sel`.
pub fn select<T: Trace>(
    p: &Policies,
    pid: ProfileId,
    signals: &Signals,
    client: &Client,
    rng: &mut Rng,
    sel: &mut Selection,
    trace: &mut T,
) {
    *sel = Selection::default();
    select_in(p, pid, signals, client, rng, sel, trace, 0);
}

/// Whether an endpoint can be answered with: enabled, its status serves, and for a nested
/// profile, enough of the child's endpoints are available.
pub fn available(p: &Policies, id: EndpointId, signals: &Signals, depth: usize) -> bool {
    let e = &p.endpoints[id as usize];
    if !enabled(p, id, signals) || !signals.status(id).serves() {
        return false;
    }
    match e.target {
        Target::Profile(child) if depth < MAX_DEPTH => {
            let (mut all, mut v4, mut v6) = (0u32, 0u32, 0u32);
            for &c in p.profiles[child as usize].endpoints.iter() {
                if available(p, c, signals, depth + 1) {
                    all += 1;
                    if let Target::Addresses { v4: a, v6: b } = &p.endpoints[c as usize].target {
                        v4 += (!a.is_empty()) as u32;
                        v6 += (!b.is_empty()) as u32;
                    }
                }
            }
            all >= e.min_child_endpoints && v4 >= e.min_child_ipv4 && v6 >= e.min_child_ipv6
        }
        Target::Profile(_) => false,
        _ => true,
    }
}

#[allow(clippy::too_many_arguments)]
fn select_in<T: Trace>(
    p: &Policies,
    pid: ProfileId,
    signals: &Signals,
    client: &Client,
    rng: &mut Rng,
    sel: &mut Selection,
    trace: &mut T,
    depth: usize,
) {
    let profile = &p.profiles[pid as usize];
    trace.note(depth, || {
        format!("profile {} ({}, ttl {})", profile.name, profile.method.as_str(), profile.ttl)
    });

    // Split horizon: a client in a view is only offered endpoints that answer for it.
    let view = client_view(profile, client.addr, sel);
    let fits = |id: EndpointId| {
        let e = &p.endpoints[id as usize];
        view.is_none_or(|v| {
            matches!(e.target, Target::Profile(_)) || e.view_targets.iter().any(|t| t.0 == v)
        })
    };
    if let Some(v) = view {
        trace.note(depth, || format!("client is in view {v} (split horizon)"));
    }
    let mut any_available = false;
    let mut any_enabled = false;
    for &id in profile.endpoints.iter().filter(|&&id| fits(id)) {
        let e = &p.endpoints[id as usize];
        let ok = available(p, id, signals, depth);
        let on = enabled(p, id, signals);
        any_available |= ok;
        any_enabled |= on;
        trace.note(depth + 1, || {
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
            format!("endpoint {}: {} ({why})", e.name, if ok { "available" } else { "unavailable" })
        });
    }
    // Traffic Manager's "all degraded" rule, or the profile's own choice.
    let force = !any_available;
    if force {
        match profile.when_all_down {
            AllDown::ServeAll if any_enabled => {
                trace.note(depth, || "no endpoint available: serving as if all enabled endpoints were (when_all_down = serve-all)".into());
            }
            AllDown::ServFail => {
                trace.note(depth, || {
                    "no endpoint available: SERVFAIL (when_all_down = servfail)".into()
                });
                sel.outcome = Outcome::ServFail;
                return;
            }
            _ => {
                trace.note(depth, || "no endpoint available: NODATA".into());
                sel.outcome = Outcome::NoData;
                return;
            }
        }
    }
    let ok = |id: EndpointId| {
        fits(id) && if force { enabled(p, id, signals) } else { available(p, id, signals, depth) }
    };

    let pick: Option<EndpointId> = match profile.method {
        Method::Priority => {
            let pick = profile.by_priority.iter().copied().find(|&id| ok(id));
            trace.note(depth, || match pick {
                Some(id) => format!(
                    "priority: lowest available priority is {} ({})",
                    p.endpoints[id as usize].priority, p.endpoints[id as usize].name
                ),
                None => "priority: nothing available".into(),
            });
            pick
        }
        Method::Weighted => weighted(p, profile, client, rng, sel, trace, depth, &ok),
        Method::Geographic => geographic(p, profile, client, sel, trace, depth, &ok),
        Method::Performance => {
            let pick = performance(p, profile, client, sel, trace, depth, &ok);
            match pick {
                Some(_) => pick,
                // No location for the client: fall back to a weighted choice.
                None => weighted(p, profile, client, rng, sel, trace, depth, &ok),
            }
        }
        Method::Subnet => subnet(p, profile, client, sel, trace, depth, &ok),
        Method::MultiValue => {
            let n = profile.endpoints.len();
            // Rotate the starting point so that clients limited to fewer answers than there
            // are endpoints still spread over all of them.
            let start = if n > 0 { rng.below(n as u64) as usize } else { 0 };
            for k in 0..n {
                let id = profile.endpoints[(start + k) % n];
                if ok(id) && sel.len < profile.max_answers as usize {
                    sel.push(id, view);
                }
            }
            trace.note(depth, || {
                format!(
                    "multivalue: {} endpoint(s), starting at {}",
                    sel.len, p.endpoints[profile.endpoints[start] as usize].name
                )
            });
            if sel.len == 0 {
                sel.outcome = Outcome::NoData;
            }
            return;
        }
    };
    let pick = match (&profile.burst, pick) {
        (Some(b), Some(id)) => {
            Some(spill(p, pid, profile, b, id, signals, client, rng, trace, depth, force, &fits))
        }
        (Some(b), None) => {
            // Nothing the method could pick; a Degraded primary still sends everything to an
            // available overflow endpoint, within the geo-fence.
            overflow_pick(
                p,
                profile,
                b,
                signals,
                client,
                rng,
                depth,
                b.sticky.then(|| sticky_unit(client.addr)),
                &fits,
            )
        }
        (None, pick) => pick,
    };
    let Some(id) = pick else {
        sel.outcome = Outcome::NoData;
        return;
    };
    let e = &p.endpoints[id as usize];
    match e.target {
        Target::Profile(child) => {
            trace.note(depth, || format!("chose nested endpoint {}: descending", e.name));
            select_in(p, child, signals, client, rng, sel, trace, depth + 1);
        }
        _ => {
            trace.note(depth, || format!("chose {}", e.name));
            sel.push(id, view);
        }
    }
}

/// The client prefix's place in `[0, 1)`: the same on every instance, so with a sticky burst
/// the same clients spill everywhere, and a client keeps its side while the share holds.
#[inline]
fn sticky_unit(addr: IpAddr) -> f64 {
    let (prefix, _) = sticky_prefix(addr);
    let h = mix(prefix as u64 ^ mix((prefix >> 64) as u64 ^ 0x6d65_7269_6469_616e));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Applies the burst rule to the method's pick `id`.
#[allow(clippy::too_many_arguments)]
fn spill<T: Trace>(
    p: &Policies,
    pid: ProfileId,
    profile: &Profile,
    b: &ProfileBurst,
    id: EndpointId,
    signals: &Signals,
    client: &Client,
    rng: &mut Rng,
    trace: &mut T,
    depth: usize,
    force: bool,
    fits: &impl Fn(EndpointId) -> bool,
) -> EndpointId {
    if !b.primary.contains(&id) {
        return id;
    }
    let primary_down = !force && !b.primary.iter().any(|&x| available(p, x, signals, depth));
    let share = signals.burst_share(pid);
    let draw = if b.sticky { sticky_unit(client.addr) } else { rng.unit() };
    let go = primary_down || draw < share;
    trace.note(depth, || {
        format!(
            "burst: state {}, share {:.3}, draw {draw:.3}{}{}",
            signals.burst_state(pid).as_str(),
            share,
            if b.sticky { " (client-prefix hash)" } else { "" },
            if primary_down {
                ": the primary is down, everything to overflow"
            } else if go {
                ": spilled"
            } else {
                ": kept on the primary"
            }
        )
    });
    if !go {
        return id;
    }
    match overflow_pick(p, profile, b, signals, client, rng, depth, b.sticky.then_some(draw), fits)
    {
        Some(o) => o,
        None => {
            trace.note(depth, || {
                "burst: no overflow endpoint is available here; kept on the primary".into()
            });
            id
        }
    }
}

/// An available overflow endpoint the client may be sent to, weighted; `None` if there is none.
/// In a geographic profile only overflow endpoints mapped to one of the client's regions
/// qualify: a burst never crosses the geo-fence.
#[allow(clippy::too_many_arguments)]
fn overflow_pick(
    p: &Policies,
    profile: &Profile,
    b: &ProfileBurst,
    signals: &Signals,
    client: &Client,
    rng: &mut Rng,
    depth: usize,
    sticky_draw: Option<f64>,
    fits: &impl Fn(EndpointId) -> bool,
) -> Option<EndpointId> {
    let regions = client_regions(&client.geo.unwrap_or_default());
    // Neither the geo-fence nor the client's view may be crossed by a spill.
    let allowed = |id: EndpointId| {
        fits(id)
            && available(p, id, signals, depth)
            && (profile.method != Method::Geographic
                || p.endpoints[id as usize].regions.iter().any(|r| regions.contains(&Some(*r))))
    };
    let candidates = || b.overflow.iter().copied().filter(|&o| allowed(o));
    let total = total_weight(p, candidates());
    if total == 0 {
        return None;
    }
    // Sticky: the same draw picks the same overflow endpoint; otherwise a fresh draw.
    let at = match sticky_draw {
        Some(u) => ((u * total as f64) as u64).min(total - 1),
        None => rng.below(total),
    };
    at_weight(p, candidates(), at)
}

/// The sum of the endpoints' weights.
fn total_weight(p: &Policies, ids: impl Iterator<Item = EndpointId>) -> u64 {
    ids.map(|id| p.endpoints[id as usize].weight as u64).sum()
}

/// With the endpoints' weights laid end to end, the one covering position `at`.
fn at_weight(
    p: &Policies,
    mut ids: impl Iterator<Item = EndpointId>,
    at: u64,
) -> Option<EndpointId> {
    let mut acc = 0;
    ids.find(|&id| {
        acc += p.endpoints[id as usize].weight as u64;
        at < acc
    })
}

#[allow(clippy::too_many_arguments)]
fn weighted<T: Trace>(
    p: &Policies,
    profile: &Profile,
    client: &Client,
    rng: &mut Rng,
    sel: &mut Selection,
    trace: &mut T,
    depth: usize,
    ok: &impl Fn(EndpointId) -> bool,
) -> Option<EndpointId> {
    if profile.sticky {
        // Weighted rendezvous hashing: each endpoint scores the client prefix; the best score
        // wins. Every instance computes the same scores, and when an endpoint goes away only
        // the clients it held move.
        let (prefix, len) = sticky_prefix(client.addr);
        sel.scope = sel.scope.max(len);
        let mut best: Option<(f64, EndpointId)> = None;
        for &id in profile.endpoints.iter().filter(|&&id| ok(id)) {
            let e = &p.endpoints[id as usize];
            let h = mix(prefix as u64 ^ mix((prefix >> 64) as u64 ^ e.key_hash));
            let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
            let score = e.weight as f64 / -u.ln();
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, id));
            }
        }
        trace.note(depth, || {
            format!(
                "weighted, sticky by client prefix /{len}: rendezvous hash picks {}",
                best.map_or("nothing", |(_, id)| p.endpoints[id as usize].name.as_str())
            )
        });
        return best.map(|(_, id)| id);
    }
    let candidates = || profile.endpoints.iter().copied().filter(|&id| ok(id));
    let total = total_weight(p, candidates());
    if total == 0 {
        return None;
    }
    let draw = rng.below(total);
    let pick = at_weight(p, candidates(), draw);
    trace.note(depth, || {
        format!(
            "weighted: draw {draw} of total weight {total} picks {}",
            pick.map_or("nothing", |id| p.endpoints[id as usize].name.as_str())
        )
    });
    pick
}

fn geo_info<T: Trace>(
    client: &Client,
    sel: &mut Selection,
    trace: &mut T,
    depth: usize,
) -> Option<GeoInfo> {
    let g = client.geo?;
    sel.scope = sel.scope.max(g.prefix);
    trace.note(depth, || {
        if !g.found {
            return format!("GeoIP: no record for {} (network /{})", client.addr, g.prefix);
        }
        let mut s = String::from("GeoIP:");
        if let Some(c) = g.country {
            s += &format!(" country {}", Region::Country(c));
        }
        if let Some(sd) = g.subdivision {
            s += &format!(", subdivision {}", Region::Subdivision(sd));
        }
        if let Some(gr) = g.group {
            s += &format!(", group {}", geo::GROUPS[gr as usize]);
        }
        if let Some(l) = g.location {
            s += &format!(
                ", location {:.2},{:.2}{}",
                l.lat,
                l.lon,
                if g.location_is_centroid { " (country centroid)" } else { "" }
            );
        }
        s + &format!(" (network /{})", g.prefix)
    });
    Some(g)
}

/// The view a client is in, if the profile has views; the decision's scope grows to the
/// matched view network, or to the widest block around the client that is in no view.
fn client_view(profile: &Profile, addr: IpAddr, sel: &mut Selection) -> Option<u8> {
    if profile.views.is_empty() {
        return None;
    }
    let mut closest_miss = 0u8;
    for (v, networks) in profile.views.iter().enumerate() {
        for c in networks.iter() {
            if c.contains(addr) {
                sel.scope = sel.scope.max(c.prefix);
                return Some(v as u8);
            }
            if let Some(common) = common_prefix(c.addr, addr) {
                closest_miss = closest_miss.max(common + 1);
            }
        }
    }
    let max = if addr.is_ipv4() { 32 } else { 128 };
    sel.scope = sel.scope.max(closest_miss.min(max));
    None
}

/// The regions a client is in, most specific first: subdivision, country, region group, WORLD.
fn client_regions(g: &GeoInfo) -> [Option<Region>; 4] {
    [
        g.subdivision.map(Region::Subdivision),
        g.country.map(Region::Country),
        g.group.map(Region::Group),
        Some(Region::World),
    ]
}

fn geographic<T: Trace>(
    p: &Policies,
    profile: &Profile,
    client: &Client,
    sel: &mut Selection,
    trace: &mut T,
    depth: usize,
    ok: &impl Fn(EndpointId) -> bool,
) -> Option<EndpointId> {
    let g = geo_info(client, sel, trace, depth).unwrap_or_default();
    let map = &profile.geo_map;
    let matched = client_regions(&g)
        .into_iter()
        .flatten()
        .find_map(|r| map.binary_search_by(|(k, _)| k.cmp(&r)).ok().map(|i| (r, map[i].1)));
    let Some((region, id)) = matched else {
        trace.note(depth, || {
            "geographic: no endpoint is mapped to the client's regions: NODATA".into()
        });
        return None;
    };
    if ok(id) {
        trace.note(depth, || {
            format!("geographic: region {region} is mapped to {}", p.endpoints[id as usize].name)
        });
        Some(id)
    } else {
        // Geo-fencing: no failover to another region's endpoint (a nested profile is how a
        // region gets failover).
        trace.note(depth, || format!("geographic: region {region} is mapped to {}, which is unavailable: NODATA (no failover across regions)", p.endpoints[id as usize].name));
        None
    }
}

fn performance<T: Trace>(
    p: &Policies,
    profile: &Profile,
    client: &Client,
    sel: &mut Selection,
    trace: &mut T,
    depth: usize,
    ok: &impl Fn(EndpointId) -> bool,
) -> Option<EndpointId> {
    let Some(here) = geo_info(client, sel, trace, depth).and_then(|g| g.location) else {
        trace.note(depth, || {
            "performance: no location for the client; falling back to weights".into()
        });
        return None;
    };
    let mut best: Option<(f64, u32, EndpointId)> = None;
    for &id in profile.endpoints.iter().filter(|&&id| ok(id)) {
        let e = &p.endpoints[id as usize];
        let Some(loc) = e.location else { continue };
        let d = geo::distance_km(here, loc);
        trace.note(depth + 1, || format!("{}: {d:.0} km", e.name));
        // Ties (within a kilometre) go to the higher weight.
        let better = match best {
            None => true,
            Some((bd, bw, _)) => d < bd - 1.0 || ((d - bd).abs() <= 1.0 && e.weight > bw),
        };
        if better {
            best = Some((d, e.weight, id));
        }
    }
    trace.note(depth, || {
        format!(
            "performance: nearest is {}",
            best.map_or("nothing", |b| p.endpoints[b.2 as usize].name.as_str())
        )
    });
    best.map(|b| b.2)
}

fn subnet<T: Trace>(
    p: &Policies,
    profile: &Profile,
    client: &Client,
    sel: &mut Selection,
    trace: &mut T,
    depth: usize,
    ok: &impl Fn(EndpointId) -> bool,
) -> Option<EndpointId> {
    let mut best: Option<(Cidr, EndpointId)> = None;
    let mut closest_miss = 0u8;
    for &(cidr, id) in profile.subnet_rules.iter() {
        if cidr.contains(client.addr) {
            if best.is_none_or(|(b, _)| cidr.prefix > b.prefix) {
                best = Some((cidr, id));
            }
        } else if let Some(c) = common_prefix(cidr.addr, client.addr) {
            closest_miss = closest_miss.max(c + 1);
        }
    }
    match best {
        Some((cidr, id)) => {
            sel.scope = sel.scope.max(cidr.prefix);
            if ok(id) {
                trace.note(depth, || {
                    format!(
                        "subnet: {} matches {cidr} of {}",
                        client.addr, p.endpoints[id as usize].name
                    )
                });
                return Some(id);
            }
            trace.note(depth, || {
                format!(
                    "subnet: {cidr} of {} matches but it is unavailable",
                    p.endpoints[id as usize].name
                )
            });
        }
        None => {
            // The answer holds for the client's block that overlaps no rule.
            let max = if client.addr.is_ipv4() { 32 } else { 128 };
            sel.scope = sel.scope.max(closest_miss.min(max));
            trace.note(depth, || format!("subnet: no rule matches {}", client.addr));
        }
    }
    match profile.subnet_fallback.filter(|&id| ok(id)) {
        Some(id) => {
            trace.note(depth, || {
                format!("subnet: using the fallback endpoint {}", p.endpoints[id as usize].name)
            });
            Some(id)
        }
        None => {
            trace.note(depth, || "subnet: no available fallback endpoint: NODATA".into());
            None
        }
    }
}
