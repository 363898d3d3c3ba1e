//! The offline tools: they run the serving code, never a copy of it.
//!
//! - [`explain`]: `meridian explain`, a real query run through the serving path with a tracer.
//! - [`simulate`]: `meridian simulate`, a scenario replayed in virtual time.
//! - [`import`]: `meridian import azure`. [`demo`]: local demo endpoints and load.
//! - [`chart`]: the burst chart drawn by `simulate --svg` and the status page.
//! - [`loadgen`]: `meridian loadgen`, batched DNS load from a dnsperf-format query file.
//! - [`ctl`]: `meridian status`, `reload`, `endpoint`, `load`: the operator's CLI over the
//!   admin API of a running server.

pub mod chart;
pub mod ctl;
pub mod demo;
pub mod explain;
pub mod import;
pub mod loadgen;
pub mod simulate;
