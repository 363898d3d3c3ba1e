//! `meridian explain`: how a query would be answered, step by step.
//!
//! It builds a real query message, runs it through the serving code path
//! ([`crate::dns::resolve::resolve_traced`]) with a tracer, and decodes the answer. Nothing here
//! re-implements a decision.

use crate::dns::resolve::{Request, Transport, resolve_traced};
use crate::state::Snapshot;
use crate::traffic::policy::Rng;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name as HName, RecordType};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The result of explaining one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub query: String,
    /// Each step of the decision, indented by nesting depth.
    pub trace: Vec<String>,
    pub rcode: String,
    pub authoritative: bool,
    /// Answer, authority and additional records, each prefixed with its section.
    pub records: Vec<String>,
    /// The ECS scope in the answer, when the query carried ECS.
    pub ecs_scope: Option<u8>,
}

/// A problem with the question asked (not with the answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExplainError(pub String);

/// Parses `--client`: `IP` (the query's source address) or `IP/PREFIX` (sent as EDNS Client
/// Subnet, as a resolver would).
pub fn parse_client(text: &str) -> Result<(IpAddr, Option<u8>), ExplainError> {
    let bad = || {
        ExplainError(format!("invalid client {text:?}: write an IP address, or IP/PREFIX for ECS"))
    };
    match text.split_once('/') {
        None => Ok((text.parse().map_err(|_| bad())?, None)),
        Some((a, p)) => {
            let addr: IpAddr = a.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = p.parse().ok().filter(|&p| p <= max).ok_or_else(bad)?;
            Ok((mask(addr, prefix), Some(prefix)))
        }
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// Explains how `snap` answers `name` `rtype` for `client`. `seed` fixes the random draw (for
/// weighted choices), so an explanation can be reproduced.
pub fn explain(
    snap: &Snapshot,
    name: &str,
    rtype: &str,
    client: &str,
    seed: u64,
) -> Result<Explanation, ExplainError> {
    let (addr, prefix) = parse_client(client)?;
    let qname = HName::from_str(
        if name.ends_with('.') { name.to_string() } else { format!("{name}.") }.as_str(),
    )
    .map_err(|e| ExplainError(format!("invalid name {name:?}: {e}")))?;
    let qtype = RecordType::from_str(&rtype.to_ascii_uppercase())
        .map_err(|_| ExplainError(format!("unknown record type {rtype:?}")))?;
    let mut m = Message::new(0x4d45, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(qname.clone(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some(p) = prefix {
        edns.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(addr, p, 0)));
    }
    m.set_edns(edns);
    let query = m.to_vec().map_err(|e| ExplainError(format!("cannot encode the query: {e}")))?;

    let mut trace = Vec::new();
    let mut out = vec![0u8; 65535];
    let req = Request { src: addr, transport: Transport::Tcp, now: crate::dns::cookie::unix_now() };
    let answer = resolve_traced(snap, &query, req, &mut Rng::new(seed), &mut out, &mut trace)
        .ok_or_else(|| ExplainError("the query was dropped".into()))?;
    let reply = Message::from_vec(&out[..answer.len])
        .map_err(|e| ExplainError(format!("the answer does not decode: {e}")))?;
    let mut records = Vec::new();
    for (section, list) in [
        ("answer", &reply.answers),
        ("authority", &reply.authorities),
        ("additional", &reply.additionals),
    ] {
        for r in list.iter() {
            records.push(format!(
                "{section}: {} {} IN {} {}",
                r.name,
                r.ttl,
                r.record_type(),
                r.data
            ));
        }
    }
    let ecs_scope = reply.edns.as_ref().and_then(|e| {
        match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(s)) => Some(s.scope_prefix()),
            _ => None,
        }
    });
    let client_desc = match prefix {
        Some(p) => format!("{addr}/{p} (EDNS Client Subnet)"),
        None => format!("{addr}"),
    };
    Ok(Explanation {
        query: format!("{qname} {qtype} from {client_desc}"),
        trace,
        rcode: crate::dns::resolve::rcode::name(answer.rcode).to_string(),
        authoritative: reply.metadata.authoritative,
        records,
        ecs_scope,
    })
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "query: {}", self.query)?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(
            f,
            "answer: {}{}",
            self.rcode,
            if self.authoritative { ", authoritative" } else { "" }
        )?;
        if let Some(s) = self.ecs_scope {
            write!(f, ", ECS scope /{s}")?;
        }
        for r in &self.records {
            write!(f, "\n  {r}")?;
        }
        Ok(())
    }
}
