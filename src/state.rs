//! The snapshot: everything that changes only on reload, behind one atomically swapped pointer.
//!
//! A query loads the pointer once and sees one consistent view for its whole life; a reload
//! builds and validates a complete new snapshot off the hot path and swaps it in. Queries in
//! flight keep the snapshot they started with until they finish.

use crate::config::{self, Config};
use crate::diag::{Diagnostic, Diagnostics};
use crate::geo::GeoDb;
use crate::policy::{self, Policies, Signals, Status};
use crate::zone::{self, ZoneSet};
use arc_swap::ArcSwap;
use std::path::Path;
use std::sync::Arc;

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
}

/// Reads the configuration at `path` and every file it names, and builds a snapshot. Problems
/// in the configuration and in every zone file are all reported together.
pub fn load(path: &Path) -> Result<Snapshot, Diagnostics> {
    let (config, mut diags) = config::load_lenient(path)?;
    match build(config) {
        Ok(snapshot) => diags.into_result(snapshot),
        Err(zone_diags) => {
            diags.extend(zone_diags);
            Err(diags.sorted())
        }
    }
}

/// Builds a snapshot from a validated configuration, reading its zone files. Every problem in
/// every zone file is reported, not just the first file's.
pub fn build(config: Config) -> Result<Snapshot, Diagnostics> {
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
    // Until an endpoint is monitored it is always served; disabled ones never are.
    let signals = Signals::new(
        policies
            .endpoints
            .iter()
            .map(|e| if e.enabled { Status::Unmonitored } else { Status::Disabled }),
    );
    let settings = Settings { udp_payload: config.server.udp_payload, ecs: config.server.ecs };
    diags.into_result(()).map(|()| Snapshot {
        zones: ZoneSet::new(zones),
        settings,
        config,
        policies,
        signals,
        geo,
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
