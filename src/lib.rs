//! Meridian: an authoritative DNS server that answers each query for a traffic-managed name
//! with the endpoint that should serve that client now.
//!
//! Module map, from the command line down to the data (the exact import order is the layers
//! block in ARCHITECTURE.md, which `tests/it/layers.rs` checks):
//!
//! - [`cli`]: the command line (`serve`, `check`), calling into `app`.
//! - [`app`]: wiring. The first snapshot, the server tasks, reload (SIGHUP, API, file watch),
//!   shutdown.
//! - [`admin`]: the admin HTTP API and Prometheus metrics. [`health`]: endpoint probes.
//!   [`demo`]: local demo endpoints.
//! - [`server`]: sockets. UDP workers (one per core, `SO_REUSEPORT`), TCP framing and limits.
//! - [`explain`]: `meridian explain`, a real query run through the serving path with a tracer.
//!   [`import`]: `meridian import azure`.
//! - [`resolve`]: the hot path. Query bytes in, answer bytes out; no await, lock or allocation.
//! - [`runtime`]: process-wide records (server counters, last reload, page history).
//! - [`state`]: the [`state::Snapshot`] of everything served, swapped atomically on reload.
//! - [`zone`]: zone files parsed, validated and pre-encoded; name lookup.
//! - [`policy`]: the routing methods as pure functions over compiled profiles and live signals.
//! - [`geo`]: GeoIP lookups, Traffic Manager region codes, distances, the MMDB writer.
//! - [`metrics`]: counters on atomics and the Prometheus text format.
//! - [`load`]: load sources, the burst task and webhooks; [`burst`]: the pure burst lifecycle;
//!   [`simulate`]: `meridian simulate`.
//! - [`config`]: `meridian.toml` parsed and validated into a plain model.
//! - [`live`]: the one home of each endpoint's and profile's live state, shared by snapshots.
//! - [`diag`] and [`name`]: diagnostics with file:line:col, and wire-form domain names.
//!
//! `ARCHITECTURE.md` at the repository root has the invariants each module keeps.

pub mod admin;
pub mod app;
pub mod burst;
pub mod cli;
pub mod config;
pub mod demo;
pub mod diag;
pub mod explain;
pub mod geo;
pub mod health;
pub mod http;
pub mod import;
pub mod live;
pub mod load;
pub mod metrics;
pub mod name;
pub mod policy;
pub mod resolve;
pub mod rrl;
pub mod runtime;
pub mod server;
pub mod simulate;
pub mod state;
pub mod supervise;
pub mod zone;
