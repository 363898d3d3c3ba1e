//! Meridian: an authoritative DNS server that answers each query for a traffic-managed name
//! with the endpoint that should serve that client now.
//!
//! The folders show the architecture (the exact import order is the layers block in
//! ARCHITECTURE.md, which `tests/it/layers.rs` checks):
//!
//! - [`cli`] and [`app`]: the command line, and the wiring of a running server (the first
//!   snapshot, tasks, reload, shutdown).
//! - [`dns`]: the DNS data plane. Sockets ([`dns::server`]), the allocation-free hot path
//!   ([`dns::resolve`]), zone files ([`dns::zone`]), rate limiting, names, counters.
//! - [`traffic`]: traffic decisions. The routing methods ([`traffic::policy`]), GeoIP
//!   ([`traffic::geo`]) and the pure burst lifecycle ([`traffic::burst`]).
//! - [`control`]: the control plane that feeds live state. Health probes, load sources and
//!   burst tasks, the admin API and metrics, process-wide records.
//! - [`tools`]: the offline tools. `explain`, `simulate`, `import azure`, the demo apps.
//! - [`state`]: the [`state::Snapshot`] of everything served, swapped atomically on reload;
//!   [`live`]: the one home of each endpoint's and profile's live state, shared by snapshots.
//! - [`config`]: `meridian.toml` parsed and validated into a plain model; [`diag`]:
//!   diagnostics with file:line:col.
//! - [`sys`]: the crate's only `unsafe` code (batched UDP, two libc calls).
//!
//! `ARCHITECTURE.md` at the repository root has the invariants each module keeps.

pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod diag;
pub mod dns;
pub mod live;
pub mod state;
pub mod sys;
pub mod tools;
pub mod traffic;
