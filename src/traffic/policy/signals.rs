//! The live signals a snapshot's decisions read.

use super::{EndpointId, Override, ProfileId, Status};
use crate::live::{EndpointLive, ProfileLive};
use std::sync::Arc;

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
    pub fn set_burst(&self, profile: ProfileId, state: crate::traffic::burst::State, share: f64) {
        self.profile(profile).set_burst(state, share);
    }

    #[inline]
    pub fn burst_state(&self, profile: ProfileId) -> crate::traffic::burst::State {
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
