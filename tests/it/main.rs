//! Meridian's integration tests: one binary, servers started in-process on 127.0.0.1:0, plus
//! end-to-end checks of the real binary with the real `dig`.

mod alloc;
mod cli;
mod dig;
mod dns;
mod harness;
mod managed;
mod reload;
mod tcp;
