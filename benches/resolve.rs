//! The hot path, per kind of answer: `resolve` on a warm snapshot built from the shipped
//! default configuration, including the snapshot load each query does.
//!
//! Run: `cargo bench --bench resolve`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use meridian::policy::Rng;
use meridian::resolve::{Request, Transport, resolve};
use meridian::state::{Shared, load};
use std::hint::black_box;
use std::path::Path;
use std::str::FromStr;

fn query(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
    query_ecs(name, rtype, edns, None)
}

/// A query, with EDNS Client Subnet when `ecs` is given.
fn query_ecs(name: &str, rtype: RecordType, edns: bool, ecs: Option<(&str, u8)>) -> Vec<u8> {
    let mut m = Message::new(0x4d52, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    if edns || ecs.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        if let Some((addr, prefix)) = ecs {
            e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
                addr.parse().unwrap(),
                prefix,
                0,
            )));
        }
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn bench(c: &mut Criterion) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("meridian.toml");
    let shared = Shared::new(load(&config).expect("the shipped configuration loads"));
    let cases = [
        ("static_a", query("api.app.example.com.", RecordType::A, false)),
        ("static_a_edns", query("api.app.example.com.", RecordType::A, true)),
        ("nxdomain", query("nope.app.example.com.", RecordType::A, false)),
        ("nodata", query("api.app.example.com.", RecordType::MX, false)),
        ("cname_chain", query("portal.app.example.com.", RecordType::A, false)),
        ("wildcard", query("some.host.user.app.example.com.", RecordType::A, false)),
        ("referral", query("www.eu.app.example.com.", RecordType::A, false)),
        ("refused", query("www.example.org.", RecordType::A, false)),
        // Traffic-managed names from the shipped configuration (demo GeoIP database).
        ("priority", query("www.app.example.com.", RecordType::A, false)),
        ("weighted", query("canary.app.example.com.", RecordType::A, false)),
        (
            "geographic_ecs",
            query_ecs("geo.app.example.com.", RecordType::A, true, Some(("198.51.100.0", 24))),
        ),
        (
            "priority_ecs",
            query_ecs("www.app.example.com.", RecordType::A, true, Some(("198.51.100.0", 24))),
        ),
    ];
    let mut group = c.benchmark_group("resolve");
    group.throughput(Throughput::Elements(1));
    let mut out = vec![0u8; 65535];
    let mut rng = Rng::new(1);
    let req = Request { src: "127.0.0.1".parse().unwrap(), transport: Transport::Udp };
    for (name, q) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let snap = shared.load();
                resolve(&snap, black_box(q), req, &mut rng, &mut out).map(|a| a.len)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
