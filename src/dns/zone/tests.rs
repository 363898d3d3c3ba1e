//! Zone parsing and lookup, driven by small zone texts.

use super::*;

const HEAD: &str = "$TTL 300\n@ SOA ns1 host 1 2 3 4 60\n  NS ns1\nns1 A 192.0.2.1\n";

fn origin() -> Name {
    Name::parse("example.com.", None).unwrap()
}

fn load(body: &str) -> Result<Zone, String> {
    parse(&origin(), Path::new("z.zone"), &format!("{HEAD}{body}")).map_err(|d| d.to_string())
}

/// Asserts that `body` (after a valid head of 4 lines) is rejected with each `expected`
/// fragment somewhere in the rendered diagnostics.
#[track_caller]
fn check_err(body: &str, expected: &[&str]) {
    let e = load(body).expect_err("zone should be rejected");
    for x in expected {
        assert!(e.contains(x), "expected {x:?} in:\n{e}");
    }
}

/// What a lookup finds, as a short string: `node:TYPES`, `wild:TYPES`, `referral@LABEL`,
/// `nxdomain`.
fn find(zone: &Zone, qname: &str, ds: bool) -> String {
    let name = Name::parse(qname, None).unwrap().to_lowercase();
    let labels = Labels::new(name.wire());
    let apex = labels.count() - origin().label_count();
    let types =
        |n: &Node| n.rrsets.iter().map(|r| type_name(r.rtype)).collect::<Vec<_>>().join(",");
    match zone.lookup(name.wire(), &labels, apex, ds) {
        Found::Node { node, wildcard: false } => format!("node:{}", types(node)),
        Found::Node { node, wildcard: true } => format!("wild:{}", types(node)),
        Found::Referral { label, .. } => format!("referral@{label}"),
        Found::NxDomain => "nxdomain".into(),
    }
}

#[test]
fn lookups() {
    let z = load(
        "www A 192.0.2.2\n\
         *.wild TXT \"w\"\n\
         host.ent.wild A 192.0.2.3\n\
         a.b.c TXT x\n\
         sub NS ns.sub\n\
         ns.sub A 192.0.2.4\n",
    )
    .unwrap();
    let cases = [
        ("example.com.", false, "node:NS,SOA"),
        ("WWW.example.com.", false, "node:A"),
        ("nope.example.com.", false, "nxdomain"),
        ("b.c.example.com.", false, "node:"),
        ("x.b.c.example.com.", false, "nxdomain"),
        ("any.wild.example.com.", false, "wild:TXT"),
        ("deep.any.wild.example.com.", false, "wild:TXT"),
        ("*.wild.example.com.", false, "node:TXT"),
        ("ent.wild.example.com.", false, "node:"),
        ("x.ent.wild.example.com.", false, "nxdomain"),
        ("sub.example.com.", false, "referral@0"),
        ("sub.example.com.", true, "node:NS"),
        ("ns.sub.example.com.", false, "referral@1"),
        ("a.b.ns.sub.example.com.", false, "referral@3"),
    ];
    for (q, ds, want) in cases {
        assert_eq!(find(&z, q, ds), want, "lookup of {q}");
    }
    assert_eq!(z.record_count(), 2 + 1 + 6);
}

#[test]
fn structural_rules() {
    check_err(
        "www CNAME a\nwww A 192.0.2.9\n",
        &["z.zone:5:1: www.example.com. has a CNAME and other data (A)"],
    );
    check_err(
        "x.other.org. A 192.0.2.9\n",
        &["z.zone:5:1: x.other.org. is outside the zone example.com."],
    );
    check_err(
        "sub NS ns.sub\nsub MX 1 m\nns.sub A 192.0.2.4\nx.sub TXT hi\n",
        &["z.zone:6:1: MX record at sub.example.com. is hidden", "z.zone:8:1: TXT record at x.sub"],
    );
    check_err("* NS ns1\n", &["NS records cannot be owned by a wildcard"]);
    check_err("www SOA a b 1 2 3 4 5\n", &["SOA records belong only at the zone apex"]);
    let e =
        parse(&origin(), Path::new("z.zone"), "$TTL 1\nwww A 192.0.2.1\n").unwrap_err().to_string();
    assert!(e.contains("has no SOA record") && e.contains("has no NS records"), "{e}");
}

#[test]
fn syntax_errors_point_into_the_file() {
    check_err("www A 192.0.2.300\n", &["z.zone:5:7: invalid IPv4 address"]);
    check_err("www FOO bar\n", &["z.zone:5:5: unknown record type \"FOO\""]);
    check_err("www CH A 192.0.2.1\n", &["z.zone:5:5: class CH is not supported"]);
    check_err("$INCLUDE other\n", &["z.zone:5:1: unsupported directive $INCLUDE"]);
    check_err("\n\nwww TXT \"unterminated\n", &["z.zone:7:9: unterminated quoted string"]);
    // Several problems are all reported.
    check_err("a A 1.2.3\nb AAAA zz\nc MX x y\n", &["z.zone:5:", "z.zone:6:", "z.zone:7:"]);
    let e = parse(&origin(), Path::new("z.zone"), "@ SOA ns1 host 1 2 3 4 5\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("z.zone:1:1: record has no TTL"), "{e}");
}

#[test]
fn ttl_rules_and_negative_ttl() {
    // The SOA's own TTL is 300 and MINIMUM 60: negative answers use 60 (RFC 2308 §5).
    let z = load("a 7200 A 192.0.2.1\nb A 192.0.2.2\n").unwrap();
    let neg = &z.soa_negative;
    assert_eq!(u32::from_be_bytes([neg[4], neg[5], neg[6], neg[7]]), 60);
    let ttl = |n: &str| {
        let name = Name::parse(n, None).unwrap();
        z.node(name.wire()).unwrap().rrsets[0].ttl
    };
    // $TTL applies to records without a TTL, even after an explicit one.
    assert_eq!(ttl("a.example.com."), 7200);
    assert_eq!(ttl("b.example.com."), 300);
}

#[test]
fn negative_ttl_is_the_smaller_of_soa_ttl_and_minimum() {
    // The SOA's own TTL (30) below MINIMUM (3600): negative answers use 30, not MINIMUM.
    let z = parse(
        &origin(),
        Path::new("z.zone"),
        "@ 30 SOA ns1 host 1 3600 600 86400 3600
@ 300 NS ns1
ns1 300 A 192.0.2.1
",
    )
    .unwrap();
    let neg = &z.soa_negative;
    assert_eq!(u32::from_be_bytes([neg[4], neg[5], neg[6], neg[7]]), 30);
}

#[test]
fn glue_is_attached_to_ns() {
    let z = load("sub NS ns.sub\nns.sub A 192.0.2.4\nns.sub AAAA 2001:db8::4\n").unwrap();
    let sub = z.node(Name::parse("sub.example.com.", None).unwrap().wire()).unwrap();
    assert!(sub.cut);
    assert_eq!(sub.rrset(rdata::T_NS).unwrap().extra_count, 2);
    assert_eq!(z.apex().rrset(rdata::T_NS).unwrap().extra_count, 1);
}

#[test]
fn shipped_demo_zone_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/app.example.com.zone");
    let text = std::fs::read_to_string(&path).unwrap();
    let origin = Name::parse("app.example.com.", None).unwrap();
    let z = parse(&origin, &path, &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(z.record_count() > 20);
}
