//! The control plane: everything that feeds the live state the data plane reads, and the
//! operators' view of it.
//!
//! - [`health`]: endpoint probes. [`load`]: load sources, burst tasks and webhooks.
//! - [`notify`]: NOTIFY to a zone's secondaries when its serial changes. [`refresh`]: secondary
//!   mode, keeping zones transferred from primaries current.
//! - [`admin`]: the admin HTTP API, Prometheus metrics and the status page.
//! - [`runtime`]: process-wide records (server counters, last reload, page history).
//! - [`supervise`]: one task per key, kept in line with each snapshot. [`http`]: the small
//!   HTTP client of probes, load sources and webhooks.

pub mod admin;
pub mod bursts;
pub mod consensus;
pub mod health;
pub mod http;
pub mod load;
pub mod notify;
pub mod process;
pub mod refresh;
pub mod runtime;
pub mod supervise;
