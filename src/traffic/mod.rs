//! Traffic decisions: which endpoint answers this client now.
//!
//! - [`policy`]: the routing methods as pure functions over compiled profiles and live signals.
//! - [`geo`]: GeoIP lookups, Traffic Manager region codes, distances, the MMDB writer.
//! - [`burst`]: the cloud-bursting lifecycle and spill controller, as a pure state machine.

pub mod burst;
pub mod geo;
pub mod policy;
pub mod replay;
