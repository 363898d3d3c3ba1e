//! Meridian's integration tests: one binary, servers started in-process on 127.0.0.1:0, plus
//! end-to-end checks of the real binary with the real `dig`.

mod admin;
mod alloc;
mod burst;
mod cli;
mod container;
mod dig;
mod dns;
mod fake;
mod fleet;
mod harness;
mod health;
mod https;
mod layers;
mod live_state;
mod loadgen;
mod managed;
mod reload;
mod resolver;
mod scenarios;
mod secondary;
mod tcp;
mod udp;
mod xfr;
