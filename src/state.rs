//! The snapshot: everything that changes only on reload, behind one atomically swapped pointer.
//!
//! A query loads the pointer once and sees one consistent view for its whole life; a reload
//! builds and validates a complete new snapshot off the hot path and swaps it in. Queries in
//! flight keep the snapshot they started with until they finish.

use crate::config::{self, AdminConfig, Config};
use crate::diag::{Diagnostic, Diagnostics};
use crate::dns::zone::{self, ZoneSet};
use crate::live::{EndpointLive, ProfileLive, Status, ZoneLive};
use crate::traffic::geo::GeoDb;
use crate::traffic::policy::{self, Policies, Signals};
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Protocol settings the hot path reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The largest UDP answer sent, and the payload size advertised in OPT.
    pub udp_payload: u16,
    /// Honour EDNS Client Subnet in queries.
    pub ecs: bool,
    /// The NSID answered when asked for (RFC 5001).
    pub nsid: Option<Box<[u8]>>,
    /// The CH TXT answer to `id.server` and `hostname.bind`.
    pub identity: Option<Box<[u8]>>,
    /// The secrets DNS cookies are made and checked with.
    pub cookies: Option<crate::dns::cookie::CookieKeys>,
    /// The TSIG keys requests may be signed with.
    pub keys: Box<[crate::dns::tsig::Key]>,
}

/// One immutable, validated view of everything served: what serving and the control plane
/// need, compiled from the configuration (the raw `Config` is not kept).
#[derive(Debug)]
pub struct Snapshot {
    /// The configuration file this was built from.
    pub path: PathBuf,
    /// Every file it was built from (configuration, zone files, GeoIP database): what
    /// `watch = true` watches.
    pub sources: Box<[PathBuf]>,
    pub server: config::Server,
    pub admin: AdminConfig,
    pub zones: ZoneSet,
    pub settings: Settings,
    /// Every profile and endpoint, by dense id.
    pub policies: Policies,
    /// Each endpoint's and profile's live state, indexed like `policies`: the same objects
    /// as in the snapshot before, for every endpoint the two share.
    pub signals: Signals,
    pub geo: Option<GeoDb>,
    /// `[fleet]`: the Prometheus the fleet shares, for health by consensus.
    pub fleet: Option<config::FleetShared>,
    /// Every zone transferred from primaries, with its live transfer state (the same object
    /// as in the snapshot before, by zone name).
    pub secondaries: Box<[SecondaryZone]>,
    /// The configuration this was built from: a transfer rebuilds the zones from it, so that
    /// it never applies a configuration file edited since.
    pub config: Arc<Config>,
}

/// A zone that comes from primaries.
#[derive(Debug)]
pub struct SecondaryZone {
    pub origin: crate::dns::name::Name,
    /// The last good copy, in master-file form.
    pub file: PathBuf,
    pub spec: config::Secondary,
    pub live: Arc<ZoneLive>,
}

/// What a reload request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadKind {
    /// Everything, from the configuration file (SIGHUP, the API, a watched file).
    Full,
    /// The zone files again, under the configuration being served (a transfer stored a zone).
    Zones,
}

/// A request to the reload task, answered when the new snapshot is in place (or not).
#[derive(Debug)]
pub struct ReloadRequest {
    pub kind: ReloadKind,
    pub reply: tokio::sync::oneshot::Sender<Result<(), Diagnostics>>,
}

impl Snapshot {
    /// The profile id of every profile whose live object `prev` holds and this snapshot does
    /// not, and the same for endpoints: what a reload retired.
    pub fn retired_from(&self, prev: &Snapshot) -> Retired {
        let endpoints = (0..prev.policies.endpoints.len() as u32)
            .filter(|&id| {
                let key = &prev.policies.endpoints[id as usize].key;
                self.policies.endpoint_by_key(key).is_none_or(|now| {
                    !Arc::ptr_eq(self.signals.endpoint(now), prev.signals.endpoint(id))
                })
            })
            .map(|id| {
                (
                    prev.policies.endpoints[id as usize].key.clone(),
                    prev.signals.endpoint(id).clone(),
                )
            })
            .collect();
        let profiles = (0..prev.policies.profiles.len() as u32)
            .filter(|&pid| {
                self.policies.profile_id(&prev.policies.profiles[pid as usize].name).is_none()
            })
            .map(|pid| {
                (
                    prev.policies.profiles[pid as usize].name.clone(),
                    prev.signals.profile(pid).clone(),
                )
            })
            .collect();
        Retired { endpoints, profiles }
    }
}

/// The live objects of endpoints and profiles that a reload removed, by key.
#[derive(Debug, Default)]
pub struct Retired {
    pub endpoints: Vec<(crate::live::EndpointKey, Arc<EndpointLive>)>,
    pub profiles: Vec<(crate::dns::name::Name, Arc<ProfileLive>)>,
}

/// Reads the configuration at `path` and every file it names, and builds a snapshot with
/// fresh live state. Problems in the configuration and in every zone file are all reported
/// together.
pub fn load(path: &Path) -> Result<Snapshot, Diagnostics> {
    load_with(path, None)
}

/// [`load`], taking each endpoint's and profile's live object from `prev` by key.
pub fn load_with(path: &Path, prev: Option<&Snapshot>) -> Result<Snapshot, Diagnostics> {
    let (config, mut diags) = config::load_lenient(path)?;
    match build(config, prev) {
        Ok(snapshot) => diags.into_result(snapshot),
        Err(zone_diags) => {
            diags.extend(zone_diags);
            Err(diags.sorted())
        }
    }
}

/// Builds the next snapshot from `prev`'s own configuration, reading the zone files again
/// (what a transfer does once it has stored a new copy).
pub fn rebuild_zones(prev: &Snapshot) -> Result<Snapshot, Diagnostics> {
    build((*prev.config).clone(), Some(prev))
}

/// Builds a snapshot from a validated configuration, reading its zone files. Every problem in
/// every zone file is reported, not just the first file's. Endpoints and profiles that `prev`
/// also has keep their live objects (the same `Arc`s); new ones get fresh objects.
pub fn build(config: Config, prev: Option<&Snapshot>) -> Result<Snapshot, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut zones = Vec::with_capacity(config.zones.len());
    let mut unavailable = Vec::new();
    let mut secondaries = Vec::new();
    for zc in &config.zones {
        if let Some(spec) = &zc.secondary {
            let live = prev
                .and_then(|p| p.secondaries.iter().find(|s| s.origin == zc.name))
                .map(|s| s.live.clone())
                .unwrap_or_else(|| {
                    // Expiry counts from the copy's last confirmation, which outlives a
                    // restart as the copy's modification time.
                    let mtime = std::fs::metadata(&zc.file).and_then(|m| m.modified()).ok();
                    Arc::new(ZoneLive::new(mtime))
                });
            secondaries.push(SecondaryZone {
                origin: zc.name.clone(),
                file: zc.file.clone(),
                spec: spec.clone(),
                live: live.clone(),
            });
            // A secondary's copy is ours to write, and a bad or missing one is not the
            // operator's mistake: the zone waits for a transfer, answering SERVFAIL.
            let copy = if live.expired() {
                None
            } else {
                match std::fs::read_to_string(&zc.file) {
                    Ok(text) => match zone::parse(&zc.name, &zc.file, &text) {
                        Ok(z) => Some(z),
                        Err(d) => {
                            let mut detail = live.detail();
                            detail.last_error = Some(format!("the copy on disk is unusable: {d}"));
                            detail.failed = Some(std::time::SystemTime::now());
                            None
                        }
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                    Err(e) => {
                        let mut detail = live.detail();
                        detail.last_error =
                            Some(format!("cannot read the copy {}: {e}", zc.file.display()));
                        detail.failed = Some(std::time::SystemTime::now());
                        None
                    }
                }
            };
            match copy {
                Some(z) => zones.push(adopt(z, zc, prev)),
                None => unavailable.push(zc.name.clone()),
            }
            continue;
        }
        let text = match std::fs::read_to_string(&zc.file) {
            Ok(t) => t,
            Err(e) => {
                diags.push(
                    Diagnostic::new(
                        zc.file_loc.clone(),
                        format!("cannot read zone file {}: {e}", zc.file.display()),
                    )
                    .with_hint(
                        "zone file paths are relative to the configuration file's directory",
                    ),
                );
                continue;
            }
        };
        match zone::parse(&zc.name, &zc.file, &text) {
            Ok(z) => zones.push(adopt(z, zc, prev)),
            Err(d) => diags.extend(d),
        }
    }
    // Traffic-managed names become marked nodes of the zone that holds them.
    let mut policies = policy::compile(&config);
    for (id, pc) in config.profiles.iter().enumerate() {
        let zone = zones
            .iter_mut()
            .filter(|z| pc.name.is_within(z.origin()))
            .max_by_key(|z| z.origin().len());
        if let Some(z) = zone
            && let Err(e) = z.attach_profile(&pc.name, id as u32)
        {
            diags.push(Diagnostic::new(pc.loc.clone(), e));
        }
    }
    let geo = match &config.geoip {
        None => None,
        Some(g) => match GeoDb::open(&g.database) {
            Ok(db) => Some(db),
            Err(e) => {
                diags.push(
                    Diagnostic::new(g.loc.clone(), format!("{}: {e}", g.database.display()))
                        .with_hint(
                            "build one from a CSV with `meridian geoip build`, see README.md",
                        ),
                );
                None
            }
        },
    };
    if let Some(db) = &geo {
        policy::compile_geo(&mut policies, db);
    }
    // One home for live state: an endpoint the previous snapshot had keeps its object.
    let endpoints: Box<[Arc<EndpointLive>]> = policies
        .endpoints
        .iter()
        .map(|e| {
            let kept = prev.and_then(|s| {
                Some(s.signals.endpoint(s.policies.endpoint_by_key(&e.key)?).clone())
            });
            // A new endpoint starts CheckingEndpoint (served until its first probe) or, with
            // no monitor, Unmonitored. A kept one keeps its status; the health supervisor
            // settles a monitor added or removed by this reload.
            let fresh = || {
                let s = if e.monitor.is_some() {
                    Status::CheckingEndpoint
                } else {
                    Status::Unmonitored
                };
                Arc::new(EndpointLive::new(s))
            };
            kept.unwrap_or_else(fresh)
        })
        .collect();
    let profiles: Box<[Arc<ProfileLive>]> = policies
        .profiles
        .iter()
        .map(|p| {
            prev.and_then(|s| Some(s.signals.profile(s.policies.profile_id(&p.name)?).clone()))
                .unwrap_or_default()
        })
        .collect();
    let signals = Signals::from_parts(endpoints, profiles);
    let settings = Settings {
        udp_payload: config.server.udp_payload,
        ecs: config.server.ecs,
        nsid: config.server.nsid.as_ref().map(|n| n.as_bytes().into()),
        identity: config.server.identity.as_ref().map(|n| n.as_bytes().into()),
        cookies: config.server.cookies.clone(),
        keys: config.keys.clone().into(),
    };
    // A secondary's copy is written by the server itself: watching it would reload twice.
    let sources = std::iter::once(config.path.clone())
        .chain(
            zones
                .iter()
                .filter(|z| !secondaries.iter().any(|s| s.origin == *z.origin()))
                .flat_map(|z| z.files().iter().cloned()),
        )
        .chain(config.geoip.iter().map(|g| g.database.clone()))
        .collect();
    let kept = Arc::new(config.clone());
    diags.into_result(()).map(|()| Snapshot {
        config: kept,
        secondaries: secondaries.into(),
        path: config.path,
        sources,
        server: config.server,
        admin: config.admin,
        fleet: config.fleet,
        zones: ZoneSet::new(zones, unavailable),
        settings,
        policies,
        signals,
        geo,
    })
}

/// A zone as read, with its configuration's transfer settings and, when it is transferred
/// out, the history of how it got here from `prev`'s version (for IXFR).
fn adopt(mut z: zone::Zone, zc: &config::ZoneConfig, prev: Option<&Snapshot>) -> zone::Zone {
    z.transfer = zc.transfer.clone();
    let before = prev.and_then(|p| p.zones.zones().iter().find(|o| o.origin() == z.origin()));
    if let Some(before) = before.filter(|_| !z.transfer.allow.is_empty()) {
        z.follow(before);
    }
    z
}

/// The current snapshot, shared by every worker.
#[derive(Debug)]
pub struct Shared {
    current: ArcSwap<Snapshot>,
}

impl Shared {
    pub fn new(snapshot: Snapshot) -> Shared {
        Shared { current: ArcSwap::from_pointee(snapshot) }
    }

    /// The snapshot for one request. Cheap (no reference count is touched in the common case)
    /// and lock-free; hold it only for the request.
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`, for holding beyond one request (a reload
    /// builds the next snapshot from it).
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; requests already holding the old one finish with it.
    pub fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}
