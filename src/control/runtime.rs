//! Process-wide records that outlive snapshots but are not any one endpoint's state: the
//! server's counters, the outcome of the last reload, the status page's answer history, and
//! the live objects of endpoints and profiles a reload removed, kept for a grace period so
//! that a last scrape still sees their final counts.

use crate::dns::metrics::Metrics;
use crate::dns::name::Name;
use crate::live::{EndpointKey, EndpointLive, ProfileLive};
use crate::state::{Retired, Snapshot};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How long the counters of a removed endpoint or profile are still exported by default:
/// long enough for any usual scrape interval to see their final values.
pub const RETIRED_GRACE: Duration = Duration::from_secs(60);

/// How many history samples the status page keeps (an hour at the app's 10-second sampling).
pub const HISTORY_POINTS: usize = 360;

/// One per running server.
#[derive(Debug)]
pub struct Runtime {
    pub metrics: Metrics,
    /// [`RETIRED_GRACE`] unless changed, in milliseconds.
    retired_grace_ms: AtomicU64,
    reload: Mutex<ReloadInfo>,
    history: Mutex<VecDeque<HistoryPoint>>,
    retired: Mutex<VecDeque<(Instant, Retired)>>,
    started: SystemTime,
}

/// The outcome of the last reload.
#[derive(Debug, Clone, Default)]
pub struct ReloadInfo {
    pub last_at: Option<SystemTime>,
    pub last_error: Option<String>,
}

/// One sample of every endpoint's answer counter.
#[derive(Debug, Clone)]
pub struct HistoryPoint {
    pub at: SystemTime,
    /// (endpoint key, answers so far), sorted by key.
    pub answers: Vec<(EndpointKey, u64)>,
    /// Each burst profile's state, share and primary utilisation at that moment.
    pub bursts: Vec<BurstPoint>,
}

/// One burst profile at one history sample.
#[derive(Debug, Clone)]
pub struct BurstPoint {
    pub profile: crate::dns::name::Name,
    pub state: crate::traffic::burst::State,
    pub share: f64,
    pub utilisation: Option<f64>,
}

impl Default for Runtime {
    fn default() -> Runtime {
        Runtime {
            metrics: Metrics::default(),
            retired_grace_ms: AtomicU64::new(RETIRED_GRACE.as_millis() as u64),
            reload: Mutex::default(),
            history: Mutex::default(),
            retired: Mutex::default(),
            started: SystemTime::now(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain records: a panic elsewhere while one was held leaves nothing worth refusing.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Runtime {
    /// When this server started (for `process_start_time_seconds`).
    pub fn started(&self) -> SystemTime {
        self.started
    }

    pub fn reload_info(&self) -> ReloadInfo {
        lock(&self.reload).clone()
    }

    pub fn set_reload_info(&self, info: ReloadInfo) {
        *lock(&self.reload) = info;
    }

    /// Changes how long removed endpoints' counters stay exported (tests shorten it).
    pub fn set_retired_grace(&self, grace: Duration) {
        self.retired_grace_ms.store(grace.as_millis() as u64, Ordering::Relaxed);
    }

    /// Keeps what a reload removed for the grace period, and drops what has waited longer.
    pub fn retire(&self, retired: Retired) {
        let grace = Duration::from_millis(self.retired_grace_ms.load(Ordering::Relaxed));
        let mut r = lock(&self.retired);
        if !retired.endpoints.is_empty() || !retired.profiles.is_empty() {
            r.push_back((Instant::now(), retired));
        }
        while r.front().is_some_and(|(at, _)| at.elapsed() > grace) {
            r.pop_front();
        }
    }

    /// Removed endpoints still in their grace period (a key removed twice appears once, with
    /// its most recent object).
    pub fn retired_endpoints(&self) -> Vec<(EndpointKey, Arc<EndpointLive>)> {
        self.retire(Retired::default());
        let r = lock(&self.retired);
        let mut v: Vec<_> = r.iter().rev().flat_map(|(_, x)| x.endpoints.iter().cloned()).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }

    /// Removed profiles still in their grace period.
    pub fn retired_profiles(&self) -> Vec<(Name, Arc<ProfileLive>)> {
        self.retire(Retired::default());
        let r = lock(&self.retired);
        let mut v: Vec<_> = r.iter().rev().flat_map(|(_, x)| x.profiles.iter().cloned()).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }

    /// Records every current endpoint's answer count for the status page's chart. Endpoints
    /// the snapshot no longer has drop out of the history with this sample.
    pub fn sample_history(&self, snap: &Snapshot) {
        let mut answers: Vec<(EndpointKey, u64)> = snap
            .policies
            .endpoints
            .iter()
            .enumerate()
            .map(|(id, e)| (e.key.clone(), snap.signals.endpoint(id as u32).answers()))
            .collect();
        answers.sort();
        let bursts = snap
            .policies
            .profiles
            .iter()
            .enumerate()
            .filter(|(_, p)| p.burst.is_some())
            .map(|(pid, p)| {
                let live = snap.signals.profile(pid as u32);
                BurstPoint {
                    profile: p.name.clone(),
                    state: live.burst_state(),
                    share: live.burst_share(),
                    utilisation: live.burst().as_ref().and_then(|b| b.utilisation),
                }
            })
            .collect();
        let mut h = lock(&self.history);
        for p in h.iter_mut() {
            p.answers.retain(|(k, _)| snap.policies.endpoint_by_key(k).is_some());
        }
        h.push_back(HistoryPoint { at: SystemTime::now(), answers, bursts });
        while h.len() > HISTORY_POINTS {
            h.pop_front();
        }
    }

    /// The sampled history, oldest first.
    pub fn history(&self) -> Vec<HistoryPoint> {
        lock(&self.history).iter().cloned().collect()
    }
}
