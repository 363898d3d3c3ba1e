//! The one home of each endpoint's and each profile's live state.
//!
//! An [`EndpointLive`] holds everything that changes about an endpoint while it is served:
//! the probe status and the last probe's detail, an operator's override, the load sample and
//! its smoothed value, and the answer counter. A [`ProfileLive`] holds a profile's burst state,
//! spill share and lifecycle, and its query counter. Each object is created once, when its
//! endpoint (or profile) first appears in a snapshot, and every later snapshot that still
//! contains that endpoint holds the *same* `Arc` (taken from the previous snapshot by key when
//! it is built). Writers (probe tasks, the admin API, load sources, burst tasks) write the
//! object; nothing is copied at reload, so no write can fall between a snapshot's build and its
//! swap, whatever its timing.
//!
//! The hot path reads only the atomics, with relaxed loads. Everything else sits behind one
//! small mutex per object, taken by the control plane only; writers that change an atomic
//! together with its detail (a status and the probe that set it, an override and its reason)
//! do both under that mutex, so the admin API never shows a detail the signals disagree with.

use crate::dns::name::Name;
use crate::traffic::burst::{self, Machine};
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

/// How many slots a [`Counter`] has. The first `SHARDS - 1` threads that count each own one
/// slot alone; any further thread adds to the last slot, which every such thread shares.
pub const SHARDS: usize = 8;
/// The slot threads share once every other slot is owned.
const SHARED_SLOT: u8 = SHARDS as u8 - 1;
/// `SHARD`'s value before this thread first counts.
const UNCLAIMED: u8 = u8::MAX;

/// Which exclusive slots are owned, one bit each.
static OWNED: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// This thread's slot: read on every count, so it is a plain `const` cell (no lazy
    /// initialisation, no destructor check on access).
    static SHARD: std::cell::Cell<u8> = const { std::cell::Cell::new(UNCLAIMED) };
    /// Gives the slot back when the thread ends, so short-lived threads do not use up the
    /// exclusive slots of the workers that come after them.
    static CLAIM: Claim = const { Claim };
}

struct Claim;

impl Drop for Claim {
    fn drop(&mut self) {
        let slot = SHARD.with(|s| s.replace(SHARED_SLOT));
        if slot < SHARED_SLOT {
            // Release: the next owner's Acquire claim sees this thread's last plain stores.
            OWNED.fetch_and(!(1 << slot), Ordering::Release);
        }
    }
}

/// This thread's slot in every sharded counter ([`Counter`], the server's metrics).
///
/// A slot owned by one thread alone is added to with a relaxed load and store, not a
/// read-modify-write: a locked `fetch_add` costs tens of cycles and orders the memory accesses
/// around it, on every count. Readers still see each slot's value whole (it is an atomic), and
/// sums stay exact: nobody else writes an owned slot, and the shared slot is only ever added
/// to with `fetch_add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard(u8);

impl Shard {
    /// The slot's index, below [`SHARDS`].
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// Adds `n` to `slot`, this thread's copy of a counter.
    #[inline]
    pub fn add(self, slot: &AtomicU64, n: u64) {
        if self.0 < SHARED_SLOT {
            slot.store(slot.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            slot.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// This thread's shard, claimed when it first counts.
#[inline]
pub fn shard() -> Shard {
    let s = SHARD.with(|s| s.get());
    if s != UNCLAIMED { Shard(s) } else { claim() }
}

#[cold]
fn claim() -> Shard {
    let mut owned = OWNED.load(Ordering::Acquire);
    let slot = loop {
        let free = (!owned).trailing_zeros() as u8;
        if free >= SHARED_SLOT {
            break SHARED_SLOT;
        }
        match OWNED.compare_exchange_weak(
            owned,
            owned | 1 << free,
            Ordering::Acquire,
            Ordering::Acquire,
        ) {
            Ok(_) => break free,
            Err(now) => owned = now,
        }
    };
    SHARD.with(|s| s.set(slot));
    // Registers the destructor that gives the slot back. A thread already being torn down
    // cannot register one: it keeps counting in the shared slot instead.
    if slot < SHARED_SLOT && CLAIM.try_with(|_| ()).is_err() {
        OWNED.fetch_and(!(1 << slot), Ordering::Release);
        SHARD.with(|s| s.set(SHARED_SLOT));
        return Shard(SHARED_SLOT);
    }
    Shard(slot)
}

/// One cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot(AtomicU64);

/// A counter the query path adds to from every worker without sharing a cache line: each
/// thread adds to its own slot ([`shard`]), and a reader sums the slots.
#[derive(Debug, Default)]
pub struct Counter {
    slots: [Slot; SHARDS],
}

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        let s = shard();
        s.add(&self.slots[s.index()].0, n);
    }

    pub fn get(&self) -> u64 {
        self.slots.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// An endpoint's monitoring status (Traffic Manager's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// No probe result yet: served.
    CheckingEndpoint = 0,
    Online = 1,
    Degraded = 2,
    Disabled = 3,
    Stopped = 4,
    /// Not monitored: always served.
    Unmonitored = 5,
}

impl Status {
    fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::CheckingEndpoint,
            1 => Status::Online,
            2 => Status::Degraded,
            3 => Status::Disabled,
            4 => Status::Stopped,
            _ => Status::Unmonitored,
        }
    }

    /// Available to be answered with.
    pub fn serves(self) -> bool {
        matches!(self, Status::Online | Status::CheckingEndpoint | Status::Unmonitored)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::CheckingEndpoint => "CheckingEndpoint",
            Status::Online => "Online",
            Status::Degraded => "Degraded",
            Status::Disabled => "Disabled",
            Status::Stopped => "Stopped",
            Status::Unmonitored => "Unmonitored",
        }
    }
}

/// An operator's override of an endpoint (admin API), above the configuration's `enabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Override {
    None = 0,
    Disabled = 1,
    Enabled = 2,
}

/// An endpoint's identity across reloads: its profile's name and its own name. Health,
/// overrides, loads and counters follow an endpoint by this key, never by its dense id (ids
/// are positions in one snapshot and change when the configuration does).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    /// Lowercased, absolute.
    pub profile: Name,
    pub endpoint: Box<str>,
}

impl EndpointKey {
    pub fn new(profile: Name, endpoint: &str) -> EndpointKey {
        EndpointKey { profile: profile.to_lowercase(), endpoint: endpoint.into() }
    }
}

/// `profile/endpoint` with an absolute profile name, as [`fmt::Display`] writes it.
impl std::str::FromStr for EndpointKey {
    type Err = String;

    fn from_str(s: &str) -> Result<EndpointKey, String> {
        let (profile, endpoint) =
            s.rsplit_once('/').ok_or_else(|| format!("{s:?} is not profile/endpoint"))?;
        let profile = Name::parse(profile, None).map_err(|e| format!("{profile:?}: {e}"))?;
        Ok(EndpointKey::new(profile, endpoint))
    }
}

/// `profile/endpoint`, as logs and the admin API show it.
impl fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.profile, self.endpoint)
    }
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

/// What the probes have found about one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// When the status last changed (or the endpoint appeared).
    pub since: SystemTime,
    pub last_probe: Option<ProbeResult>,
    pub probes_ok: u64,
    pub probes_failed: u64,
    pub probe_seconds: f64,
    pub transitions: u64,
    /// This instance's own verdict (the probe machine's status), when it has probed. The
    /// status answers follow is this, unless a consensus decides.
    pub verdict: Option<Status>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            since: SystemTime::now(),
            last_probe: None,
            probes_ok: 0,
            probes_failed: 0,
            probe_seconds: 0.0,
            transitions: 0,
            verdict: None,
        }
    }
}

/// An operator's override of an endpoint, with its reason and expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminOverride {
    pub enabled: bool,
    pub reason: Option<String>,
    pub set_at: SystemTime,
    pub expires_at: Option<SystemTime>,
}

/// What is known of one endpoint's load. Only samples that passed validation reach `raw` and
/// `smoothed`; rejected ones are counted and leave both untouched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    pub raw: Option<f64>,
    pub smoothed: Option<f64>,
    pub sampled_at: Option<Instant>,
    pub updated: Option<SystemTime>,
    pub samples: u64,
    /// Reads of the source that failed (no answer, not a number).
    pub failures: u64,
    /// Samples refused by validation (not finite, negative, absurdly above capacity).
    pub rejected: u64,
    /// The source is failing or its values are being rejected: logged once on each change.
    pub failing: bool,
    pub error: Option<String>,
}

impl Load {
    /// How long before `now` the last accepted sample came, if any did.
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.sampled_at.map(|t| now.saturating_duration_since(t))
    }

    /// The smoothed value while it is younger than `stale_after` at `now`; `None` when unknown
    /// or stale (a stale value is unknown, never zero).
    pub fn fresh(&self, stale_after: Duration, now: Instant) -> Option<f64> {
        let fresh = self.age(now).is_some_and(|a| a <= stale_after);
        if fresh { self.smoothed } else { None }
    }
}

/// Everything about an endpoint that the hot path does not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointDetail {
    pub health: Health,
    pub admin: Option<AdminOverride>,
    pub load: Load,
    /// Health by consensus (`consensus = "prometheus"`): what the fleet's probes said at the
    /// last instant read, `None` when there was no report (this instance's verdict decides).
    pub consensus: Option<Consensus>,
}

/// What the fleet's probes said about an endpoint at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Consensus {
    /// At least half the reporting instances see it up.
    pub up: bool,
    /// The share of reporting instances that see it up.
    pub fraction: f64,
    pub instant: SystemTime,
}

/// One endpoint's live state: the signals `policy::select` reads, and their detail.
#[derive(Debug)]
pub struct EndpointLive {
    status: AtomicU8,
    admin: AtomicU8,
    answers: Counter,
    detail: Mutex<EndpointDetail>,
}

impl Default for EndpointLive {
    fn default() -> EndpointLive {
        EndpointLive::new(Status::CheckingEndpoint)
    }
}

impl EndpointLive {
    pub fn new(status: Status) -> EndpointLive {
        EndpointLive {
            status: AtomicU8::new(status as u8),
            admin: AtomicU8::new(Override::None as u8),
            answers: Counter::default(),
            detail: Mutex::new(EndpointDetail::default()),
        }
    }

    /// The probes' verdict, or Unmonitored.
    #[inline]
    pub fn status(&self) -> Status {
        Status::from_u8(self.status.load(Ordering::Relaxed))
    }

    /// Enabled (by the admin override, else by the configuration's `configured`) and served
    /// by the probes' verdict: what every answer asks of each endpoint it looks at, so it reads
    /// the two bytes as they are stored rather than through the enums.
    #[inline]
    pub fn serves(&self, configured: bool) -> bool {
        const SERVES: u32 = 1 << Status::CheckingEndpoint as u8 | 1 << Status::Online as u8;
        let admin = self.admin.load(Ordering::Relaxed);
        let enabled =
            (admin == Override::Enabled as u8) | (configured & (admin != Override::Disabled as u8));
        let status = self.status.load(Ordering::Relaxed);
        // Every value past Stopped reads as Unmonitored (see Status::from_u8).
        enabled & (status > Status::Stopped as u8 || SERVES >> status & 1 != 0)
    }

    #[inline]
    pub fn admin(&self) -> Override {
        match self.admin.load(Ordering::Relaxed) {
            1 => Override::Disabled,
            2 => Override::Enabled,
            _ => Override::None,
        }
    }

    #[inline]
    pub fn count_answer(&self) {
        self.answers.add(1);
    }

    pub fn answers(&self) -> u64 {
        self.answers.get()
    }

    /// Sets the status alone (tests, `simulate`, and a monitor that was removed).
    pub fn set_status(&self, status: Status) {
        self.status.store(status as u8, Ordering::Relaxed);
    }

    /// Sets the override signal alone (tests and `simulate`; the admin API uses
    /// [`EndpointLive::set_override`], which keeps the detail with it).
    pub fn set_admin(&self, o: Override) {
        self.admin.store(o as u8, Ordering::Relaxed);
    }

    /// The detail, locked. Never held across an `.await`.
    pub fn detail(&self) -> MutexGuard<'_, EndpointDetail> {
        // A panic while holding this lock cannot leave the plain data inconsistent in a way
        // that matters more than losing the endpoint's state, so a poisoned lock is used as is.
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies an operator's override (or clears it with `None`): the signal and its detail
    /// change together.
    pub fn set_override(&self, o: Option<AdminOverride>) {
        let mut d = self.detail();
        let signal = match &o {
            None => Override::None,
            Some(o) if o.enabled => Override::Enabled,
            Some(_) => Override::Disabled,
        };
        d.admin = o;
        self.set_admin(signal);
    }

    /// Clears the override if its time is up at `now`; returns whether it did.
    pub fn expire_override(&self, now: SystemTime) -> bool {
        let mut d = self.detail();
        if d.admin.as_ref().and_then(|o| o.expires_at).is_some_and(|t| t <= now) {
            d.admin = None;
            self.set_admin(Override::None);
            true
        } else {
            false
        }
    }

    /// Records one probe result and, when it changed, the new status: both under the lock, so
    /// the signal and `/v1/status` never disagree.
    pub fn record_probe(&self, result: ProbeResult, new_status: Option<Status>) {
        let mut d = self.detail();
        if result.ok {
            d.health.probes_ok += 1;
        } else {
            d.health.probes_failed += 1;
        }
        d.health.probe_seconds += result.latency.as_secs_f64();
        d.health.last_probe = Some(result);
        if let Some(to) = new_status {
            d.health.since = SystemTime::now();
            d.health.transitions += 1;
            d.health.verdict = Some(to);
            self.set_status(effective(&d, to));
        }
    }

    /// This instance's own verdict: what its probes decided (the status, before any probe).
    pub fn verdict(&self) -> Status {
        let d = self.detail();
        d.health.verdict.unwrap_or_else(|| self.status())
    }

    /// Sets (or clears) the fleet's consensus; the status follows it, or this instance's own
    /// verdict without one. Both under the lock.
    pub fn set_consensus(&self, c: Option<Consensus>) {
        let mut d = self.detail();
        d.consensus = c;
        let own = d.health.verdict.unwrap_or_else(|| self.status());
        self.set_status(effective(&d, own));
    }

    /// Forgets what the probes found and sets `status`: Unmonitored when the endpoint's
    /// monitor was removed, CheckingEndpoint when one is added.
    pub fn reset_health(&self, status: Status) {
        let mut d = self.detail();
        d.health = Health::default();
        d.consensus = None;
        self.set_status(status);
    }
}

/// The status answers follow: the fleet's consensus when there is one, else `own`.
fn effective(d: &EndpointDetail, own: Status) -> Status {
    match &d.consensus {
        Some(c) if c.up => Status::Online,
        Some(_) => Status::Degraded,
        None => own,
    }
}

/// A profile's burst lifecycle, as the burst task last published it.
#[derive(Debug, Clone)]
pub struct BurstDetail {
    pub machine: Machine,
    pub utilisation: Option<f64>,
    pub last_transition: Option<SystemTime>,
    pub transitions: u64,
    pub webhooks_ok: u64,
    pub webhooks_failed: u64,
    /// In fleet mode: what the last aligned tick decided from.
    pub fleet: Option<FleetView>,
}

/// The fleet view of a burst decision (`traffic::replay`): the aligned instant decided, the
/// window replayed, and whether the shared data could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetView {
    pub instant: SystemTime,
    pub window: std::time::Duration,
    /// Points in the window, and how many carried a load reading.
    pub points: usize,
    pub with_load: usize,
    /// The consensus inputs at the instant: the fleet's published share, and whether the
    /// primary and overflow groups were up by consensus (`None`: no report, own view used).
    pub fleet_share: Option<f64>,
    pub primary_up: Option<bool>,
    pub overflow_up: Option<bool>,
    /// Set when the shared data could not be read: this tick was decided locally.
    pub error: Option<String>,
}

/// One profile's live state: the burst signals `select` reads, the lifecycle behind them, and
/// the query counter.
#[derive(Debug, Default)]
pub struct ProfileLive {
    burst_state: AtomicU8,
    /// The share, rounded to parts per million, as the bits of an `f64`: the division is done
    /// once when it is published, not on every query that reads it (0 bits: 0.0, the default).
    burst_share: AtomicU64,
    queries: Counter,
    burst: Mutex<Option<BurstDetail>>,
}

impl ProfileLive {
    /// Publishes the burst state and share.
    pub fn set_burst(&self, state: burst::State, share: f64) {
        let ppm = (share.clamp(0.0, 1.0) * 1e6).round();
        self.burst_share.store((ppm / 1e6).to_bits(), Ordering::Relaxed);
        self.burst_state.store(state as u8, Ordering::Relaxed);
    }

    #[inline]
    pub fn burst_state(&self) -> burst::State {
        burst::State::from_u8(self.burst_state.load(Ordering::Relaxed))
    }

    /// The share of answers spilled to overflow, 0.0–1.0.
    #[inline]
    pub fn burst_share(&self) -> f64 {
        f64::from_bits(self.burst_share.load(Ordering::Relaxed))
    }

    #[inline]
    pub fn count_query(&self) {
        self.queries.add(1);
    }

    pub fn queries(&self) -> u64 {
        self.queries.get()
    }

    /// The lifecycle detail, locked. Never held across an `.await`.
    pub fn burst(&self) -> MutexGuard<'_, Option<BurstDetail>> {
        self.burst.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_stay_exact_with_more_threads_than_slots() {
        // Three times as many threads as slots, all counting at once: most share the last
        // slot, the first few own theirs. Every add must land.
        let c = Counter::default();
        let threads = 3 * SHARDS;
        let per = 20_000u64;
        let (start, end) = (std::sync::Barrier::new(threads), std::sync::Barrier::new(threads));
        let slots: Vec<usize> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        for _ in 0..per {
                            c.add(1);
                        }
                        // Nobody ends (and gives its slot back) before everyone has claimed.
                        end.wait();
                        shard().index()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(c.get(), threads as u64 * per);
        assert!(slots.iter().all(|&i| i < SHARDS));
        // At most one thread owns each slot but the shared one.
        for i in 0..SHARDS - 1 {
            assert!(slots.iter().filter(|&&s| s == i).count() <= 1, "slot {i}: {slots:?}");
        }
        assert!(slots.contains(&(SHARDS - 1)), "{threads} threads and no one shared: {slots:?}");
    }

    /// The byte-level check answers as the enums do, for every status, override and
    /// configured state.
    #[test]
    fn serves_reads_the_bytes_as_the_enums_do() {
        use Status::*;
        for status in [CheckingEndpoint, Online, Degraded, Disabled, Stopped, Unmonitored] {
            for admin in [Override::None, Override::Disabled, Override::Enabled] {
                for configured in [false, true] {
                    let e = EndpointLive::new(status);
                    e.set_admin(admin);
                    let enabled = match admin {
                        Override::Disabled => false,
                        Override::Enabled => true,
                        Override::None => configured,
                    };
                    let want = enabled && status.serves();
                    assert_eq!(e.serves(configured), want, "{status:?} {admin:?} {configured}");
                }
            }
        }
    }

    #[test]
    fn override_and_detail_change_together() {
        let e = EndpointLive::default();
        let now = SystemTime::now();
        e.set_override(Some(AdminOverride {
            enabled: false,
            reason: Some("maintenance".into()),
            set_at: now,
            expires_at: Some(now + Duration::from_secs(5)),
        }));
        assert_eq!(e.admin(), Override::Disabled);
        assert!(!e.expire_override(now));
        assert_eq!(e.admin(), Override::Disabled);
        assert!(e.expire_override(now + Duration::from_secs(5)));
        assert_eq!(e.admin(), Override::None);
        assert_eq!(e.detail().admin, None);
    }

    #[test]
    fn probe_and_status_change_together() {
        let e = EndpointLive::default();
        let r = ProbeResult {
            at: SystemTime::now(),
            ok: false,
            status_code: None,
            error: Some("connect: refused".into()),
            latency: Duration::from_millis(3),
        };
        e.record_probe(r.clone(), Some(Status::Degraded));
        assert_eq!(e.status(), Status::Degraded);
        let d = e.detail();
        assert_eq!((d.health.probes_failed, d.health.transitions), (1, 1));
        assert_eq!(d.health.last_probe.as_ref(), Some(&r));
    }
}

/// What a secondary zone's refresh task has learnt: the one home of its transfer state. The
/// served data and serial live in the snapshot's zone (built from the copy on disk); this
/// holds when and how it got there, and whether it is past its expiry. The hot path never
/// reads it: an expired zone is rebuilt into the snapshot as unavailable.
#[derive(Debug, Default)]
pub struct ZoneLive {
    detail: Mutex<ZoneDetail>,
    /// Woken by a NOTIFY from one of the zone's primaries.
    wake: tokio::sync::Notify,
}

/// A secondary zone's transfer record.
#[derive(Debug, Clone, Default)]
pub struct ZoneDetail {
    /// The last time a primary answered (an SOA query or a transfer): the SOA's expire
    /// counts from here (RFC 1035 §3.3.13).
    pub refreshed: Option<SystemTime>,
    /// The last transfer applied: when, what kind (AXFR or IXFR), from whom, to which serial.
    pub transferred: Option<SystemTime>,
    pub kind: Option<&'static str>,
    pub from: Option<std::net::SocketAddr>,
    pub transfers: u64,
    /// Refreshes that reached no primary or got nothing usable.
    pub failures: u64,
    pub last_error: Option<String>,
    /// When the last error happened.
    pub failed: Option<SystemTime>,
    /// Past the expire with no primary answering: the zone answers SERVFAIL.
    pub expired: bool,
    pub notifies: u64,
}

impl ZoneLive {
    /// A zone whose last good copy was last confirmed at `refreshed` (the copy's
    /// modification time, when it has one).
    pub fn new(refreshed: Option<SystemTime>) -> ZoneLive {
        let live = ZoneLive::default();
        live.detail().refreshed = refreshed;
        live
    }

    pub fn detail(&self) -> MutexGuard<'_, ZoneDetail> {
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn expired(&self) -> bool {
        self.detail().expired
    }

    /// A primary sent NOTIFY: refresh now. Callable from any thread; never blocks.
    pub fn notified(&self) {
        self.detail().notifies += 1;
        self.wake.notify_one();
    }

    /// Waits for the next NOTIFY (one that came while nobody waited counts).
    pub async fn wait_notify(&self) {
        self.wake.notified().await
    }
}
