//! The DNS data plane: bytes in, answers out.
//!
//! - [`server`]: UDP workers (one per core, `SO_REUSEPORT`), TCP framing and limits.
//! - [`resolve`]: the hot path. Query bytes in, answer bytes out; no await, lock or allocation.
//! - [`zone`]: zone files parsed, validated and pre-encoded; name lookup.
//! - [`cookie`]: DNS cookies (RFC 7873, RFC 9018 server cookies).
//! - [`tsig`]: TSIG (RFC 8945): verifying requests, signing answers and transfers.
//! - [`xfr`]: outgoing zone transfers (AXFR, IXFR) over TCP, and NOTIFYs coming in.
//! - [`xfr_in`]: incoming transfers' wire side: requests, reading the stream, applying IXFR,
//!   the zone copy as a master file.
//! - [`rrl`]: response rate limiting. [`metrics`]: the server's counters and the Prometheus
//!   text format. [`name`]: wire-form domain names.

pub mod cookie;
pub mod metrics;
pub mod name;
pub mod resolve;
pub mod rrl;
pub mod server;
pub mod tsig;
pub mod xfr;
pub mod xfr_in;
pub mod zone;
