//! The snapshot: everything that changes only on reload, behind one atomically swapped pointer.
//!
//! A query loads the pointer once and sees one consistent view for its whole life; a reload
//! builds and validates a complete new snapshot off the hot path and swaps it in. Queries in
//! flight keep the snapshot they started with until they finish.

use crate::config::{self, Config};
use crate::diag::{Diagnostic, Diagnostics};
use crate::geo::GeoDb;
use crate::metrics::Metrics;
use crate::policy::{self, Override, Policies, Signals, Status};
use crate::zone::{self, ZoneSet};
use arc_swap::ArcSwap;
use dashmap::DashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Control-plane state that outlives snapshots, keyed by endpoint key (`profile/endpoint`) so
/// that it carries over reloads: probe health, operators' overrides, counters. Written by the
/// health tasks and the admin API; the hot path never reads it (it reads the snapshot's
/// signals and counters, which are built from it).
#[derive(Debug, Default)]
pub struct Live {
    pub health: DashMap<String, EndpointHealth>,
    pub overrides: DashMap<String, AdminOverride>,
    /// Load by endpoint key.
    pub loads: DashMap<String, LoadState>,
    /// Burst lifecycle by profile name.
    pub bursts: DashMap<String, BurstStatus>,
    pub metrics: Metrics,
    /// Monotonic counters by name (`profile:NAME`, `endpoint:KEY`), shared by every snapshot.
    counters: DashMap<String, Arc<AtomicU64>>,
    pub reload: Mutex<ReloadInfo>,
    /// Each endpoint's answer count, sampled every few seconds, for the status page's chart.
    pub history: Mutex<std::collections::VecDeque<HistoryPoint>>,
}

/// One sample of every endpoint's answer counter.
#[derive(Debug, Clone)]
pub struct HistoryPoint {
    pub at: SystemTime,
    /// (endpoint key, answers so far), sorted by key.
    pub answers: Vec<(String, u64)>,
}

/// What the health task knows about one monitored endpoint.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    pub status: Status,
    pub since: SystemTime,
    pub last_probe: Option<ProbeResult>,
    pub probes_ok: u64,
    pub probes_failed: u64,
    pub probe_seconds: f64,
    pub transitions: u64,
}

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub at: SystemTime,
    pub ok: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency: Duration,
}

/// What is known of one endpoint's load.
#[derive(Debug, Clone)]
pub struct LoadState {
    pub raw: Option<f64>,
    pub smoothed: Option<f64>,
    pub capacity: f64,
    pub sampled_at: Option<std::time::Instant>,
    pub updated: Option<SystemTime>,
    pub stale_after: Duration,
    pub samples: u64,
    pub failures: u64,
    pub failing: bool,
    pub error: Option<String>,
}

impl LoadState {
    pub fn new(cfg: &crate::config::LoadConfig) -> LoadState {
        LoadState {
            raw: None,
            smoothed: None,
            capacity: cfg.capacity,
            sampled_at: None,
            updated: None,
            stale_after: cfg.stale_after,
            samples: 0,
            failures: 0,
            failing: false,
            error: None,
        }
    }

    /// How long ago the last sample came, if any did.
    pub fn age(&self) -> Option<Duration> {
        self.sampled_at.map(|t| t.elapsed())
    }

    /// Smoothed load over capacity; `None` when unknown or older than `stale_after` (a stale
    /// value is unknown, never zero).
    pub fn utilisation(&self) -> Option<f64> {
        let fresh = self.age().is_some_and(|a| a <= self.stale_after);
        if fresh { self.smoothed.map(|v| v / self.capacity) } else { None }
    }
}

/// A profile's burst lifecycle, as the burst task last published it.
#[derive(Debug, Clone)]
pub struct BurstStatus {
    pub machine: crate::burst::Machine,
    pub utilisation: Option<f64>,
    pub last_transition: Option<SystemTime>,
    pub transitions: u64,
    pub webhooks_ok: u64,
    pub webhooks_failed: u64,
}

/// An operator's override of an endpoint, from the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminOverride {
    pub enabled: bool,
    pub reason: Option<String>,
    pub set_at: SystemTime,
    pub expires_at: Option<SystemTime>,
}

/// The outcome of the last reload.
#[derive(Debug, Clone, Default)]
pub struct ReloadInfo {
    pub last_at: Option<SystemTime>,
    pub last_error: Option<String>,
}

impl Live {
    /// The shared counter called `name`, created at zero.
    pub fn counter(&self, name: String) -> Arc<AtomicU64> {
        self.counters.entry(name).or_default().clone()
    }

    /// Every counter whose name starts with `prefix`, with the rest of its name.
    pub fn counters_with(&self, prefix: &str) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .counters
            .iter()
            .filter_map(|e| {
                let rest = e.key().strip_prefix(prefix)?;
                Some((rest.to_string(), e.value().load(std::sync::atomic::Ordering::Relaxed)))
            })
            .collect();
        v.sort();
        v
    }
}

/// Per-snapshot handles on the shared counters the hot path bumps, indexed by id.
#[derive(Debug, Default)]
pub struct Counters {
    pub profile_queries: Box<[Arc<AtomicU64>]>,
    pub endpoint_answers: Box<[Arc<AtomicU64>]>,
}

/// Protocol settings the hot path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The largest UDP answer sent, and the payload size advertised in OPT.
    pub udp_payload: u16,
    /// Honour EDNS Client Subnet in queries.
    pub ecs: bool,
}

/// One immutable, validated view of everything served.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub zones: ZoneSet,
    pub settings: Settings,
    /// Every profile and endpoint, by dense id.
    pub policies: Policies,
    /// Live per-endpoint state, indexed like `policies.endpoints`.
    pub signals: Signals,
    pub geo: Option<GeoDb>,
    pub counters: Counters,
}

/// Reads the configuration at `path` and every file it names, and builds a snapshot. Problems
/// in the configuration and in every zone file are all reported together.
pub fn load(path: &Path) -> Result<Snapshot, Diagnostics> {
    load_with(path, &Live::default())
}

/// [`load`], with signals and counters carried over from `live` by endpoint key.
pub fn load_with(path: &Path, live: &Live) -> Result<Snapshot, Diagnostics> {
    let (config, mut diags) = config::load_lenient(path)?;
    match build(config, live) {
        Ok(snapshot) => diags.into_result(snapshot),
        Err(zone_diags) => {
            diags.extend(zone_diags);
            Err(diags.sorted())
        }
    }
}

/// Builds a snapshot from a validated configuration, reading its zone files. Every problem in
/// every zone file is reported, not just the first file's.
pub fn build(config: Config, live: &Live) -> Result<Snapshot, Diagnostics> {
    let mut diags = Diagnostics::default();
    let mut zones = Vec::with_capacity(config.zones.len());
    for zc in &config.zones {
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
            Ok(z) => zones.push(z),
            Err(d) => diags.extend(d),
        }
    }
    // Traffic-managed names become marked nodes of the zone that holds them.
    let policies = policy::compile(&config);
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
    // Status carries over by endpoint key; a new monitored endpoint starts CheckingEndpoint.
    let monitored: Vec<bool> = config
        .profiles
        .iter()
        .flat_map(|p| p.endpoints.iter().map(|e| e.monitor.is_some()))
        .collect();
    let signals = Signals::new(
        policies.profiles.len(),
        policies.endpoints.iter().zip(&monitored).map(|(e, &m)| {
            if m {
                live.health.get(&e.key).map_or(Status::CheckingEndpoint, |h| h.status)
            } else {
                Status::Unmonitored
            }
        }),
    );
    for (pid, p) in policies.profiles.iter().enumerate() {
        if let Some(b) = live.bursts.get(&p.name.to_string()) {
            signals.set_burst(pid as u32, b.machine.state, b.machine.share);
        }
    }
    for (id, e) in policies.endpoints.iter().enumerate() {
        if let Some(o) = live.overrides.get(&e.key) {
            signals.set_admin(
                id as u32,
                if o.enabled { Override::Enabled } else { Override::Disabled },
            );
        }
    }
    let counters = Counters {
        profile_queries: policies
            .profiles
            .iter()
            .map(|p| live.counter(format!("profile:{}", p.name)))
            .collect(),
        endpoint_answers: policies
            .endpoints
            .iter()
            .map(|e| live.counter(format!("endpoint:{}", e.key)))
            .collect(),
    };
    let settings = Settings { udp_payload: config.server.udp_payload, ecs: config.server.ecs };
    diags.into_result(()).map(|()| Snapshot {
        zones: ZoneSet::new(zones),
        settings,
        config,
        policies,
        signals,
        geo,
        counters,
    })
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

    /// Replaces the snapshot; requests already holding the old one finish with it.
    pub fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }
}
