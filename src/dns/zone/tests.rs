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
    check_err("$INCLUDE\n", &["z.zone:5:1: $INCLUDE takes a file name"]);
    check_err("$FOO bar\n", &["z.zone:5:1: unsupported directive $FOO"]);
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

/// Parses `files[0]` with every file in `files` readable by its path, as the zone
/// example.com.
fn load_files(files: &[(&str, &str)]) -> Result<Zone, String> {
    let table: HashMap<PathBuf, String> =
        files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())).collect();
    let read = |p: &Path| {
        table
            .get(&normalize(p))
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    };
    parse_with(&origin(), Path::new(files[0].0), files[0].1, &read).map_err(|d| d.to_string())
}

/// The rdata of each record of `name`'s RRset of type `rtype`, as hex: names in the zone
/// end in `c000`, the pointer to the apex the writer fills in.
fn rdatas(z: &Zone, name: &str, rtype: u16) -> Vec<String> {
    let wire = Name::parse(name, None).unwrap().to_lowercase();
    let Some(set) = z.node(wire.wire()).and_then(|n| n.rrset(rtype)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut t = &set.tails[..];
    while t.len() >= 10 {
        let len = u16::from_be_bytes([t[8], t[9]]) as usize;
        out.push(t[10..10 + len].iter().map(|b| format!("{b:02x}")).collect());
        t = &t[10 + len..];
    }
    out
}

#[test]
fn include_reads_files_relative_to_the_including_one() {
    let z = load_files(&[
        (
            "zones/z.zone",
            &format!(
                "{HEAD}$INCLUDE sub/hosts.zone\n$INCLUDE sub/lab.zone lab\nafter A 192.0.2.9\n"
            ),
        ),
        ("zones/sub/hosts.zone", "www A 192.0.2.2\n$INCLUDE ../common/mail.zone\n"),
        ("zones/common/mail.zone", "mail A 192.0.2.3\n"),
        // Its own $ORIGIN and TTL: the origin ends with the file, the $TTL carries on.
        (
            "zones/sub/lab.zone",
            "$TTL 60\nbox A 192.0.2.4\n$ORIGIN x.example.com.\nin-x A 192.0.2.5\n",
        ),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    for (name, want) in [
        ("www.example.com.", "c0000202"),
        ("mail.example.com.", "c0000203"),
        ("box.lab.example.com.", "c0000204"),
        ("in-x.x.example.com.", "c0000205"),
        ("after.example.com.", "c0000209"),
    ] {
        assert_eq!(rdatas(&z, name, rdata::T_A), [want], "{name}");
    }
    let ttl = |n: &str| z.node(Name::parse(n, None).unwrap().wire()).unwrap().rrsets[0].ttl;
    assert_eq!(ttl("www.example.com."), 300);
    assert_eq!(ttl("after.example.com."), 60);
    let files: Vec<String> = z.files().iter().map(|f| f.display().to_string()).collect();
    assert_eq!(
        files,
        [
            "zones/z.zone",
            "zones/sub/hosts.zone",
            "zones/sub/../common/mail.zone",
            "zones/sub/lab.zone"
        ]
    );
}

#[test]
fn include_errors_point_into_the_included_file() {
    // Each case: what z.zone has after the head, hosts.zone and more.zone, and what the
    // rendered diagnostics must say.
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // A bad record, a lexing error and a structural one, each in the file it is in.
        ("", "ok A 192.0.2.1\nbad A 192.0.2.300\n", "", &["hosts.zone:2:7: invalid IPv4 address"]),
        ("", "\nt TXT \"open\n", "", &["hosts.zone:2:7: unterminated quoted string"]),
        (
            "www A 192.0.2.9\n",
            "www CNAME a\n",
            "",
            &["hosts.zone:1:1: www.example.com. has a CNAME and other data (A)", "z.zone:6"],
        ),
        // A loop, directly or through another file, is found however the path is spelt.
        (
            "",
            "$INCLUDE ./z.zone\n",
            "",
            &["hosts.zone:1:10: $INCLUDE loop: z.zone includes hosts.zone includes z.zone"],
        ),
        (
            "",
            "$INCLUDE more.zone\n",
            "$INCLUDE hosts.zone\n",
            &["more.zone:1:10: $INCLUDE loop: hosts.zone includes more.zone includes hosts.zone"],
        ),
        (
            "",
            "$INCLUDE missing.zone\n",
            "",
            &["hosts.zone:1:10: cannot read included file missing.zone"],
        ),
        ("", "$INCLUDE a b c\n", "", &["hosts.zone:1:1: $INCLUDE takes a file name"]),
        ("", "$INCLUDE more.zone bad..name\n", "", &["hosts.zone:1:20: invalid $INCLUDE origin"]),
    ];
    for (after, hosts, more, want) in cases {
        let main = format!("{HEAD}$INCLUDE hosts.zone\n{after}");
        let e = load_files(&[("z.zone", &main), ("hosts.zone", hosts), ("more.zone", more)])
            .expect_err("zone should be rejected");
        for w in *want {
            assert!(e.contains(w), "expected {w:?} in:\n{e}");
        }
    }
}

#[test]
fn generate_templates() {
    let cases: &[(&str, u64, Result<&str, &str>)] = &[
        ("$", 5, Ok("5")),
        ("host-$.x", 12, Ok("host-12.x")),
        ("${10,3}", 5, Ok("015")),
        ("${-1}", 5, Ok("4")),
        ("${0,4,x}", 255, Ok("00ff")),
        ("${0,4,X}", 255, Ok("00FF")),
        ("${0,3,o}", 8, Ok("010")),
        ("${0,0,d}", 7, Ok("7")),
        // Nibbles, least significant first; the width counts characters with the dots, as
        // BIND counts them.
        ("${0,0,n}", 0x12, Ok("2.1")),
        ("${0,3,n}", 1, Ok("1.0")),
        ("${0,7,N}", 0xab, Ok("B.A.0.0")),
        ("${0,1,n}", 0, Ok("0")),
        // A literal dollar sign stays escaped for the name parser.
        ("$$", 1, Ok("\\$")),
        ("\\$", 1, Ok("\\$")),
        ("a\\.b$", 1, Ok("a\\.b1")),
        ("${", 1, Err("unclosed ${")),
        ("${x}", 1, Err("invalid $GENERATE modifier ${x}")),
        ("${0,1,q}", 1, Err("invalid $GENERATE modifier")),
        ("${0,1,d,9}", 1, Err("invalid $GENERATE modifier")),
        ("${0,999}", 1, Err("invalid $GENERATE modifier")),
        ("${-10}", 5, Err("makes a negative value from 5")),
    ];
    for (template, value, want) in cases {
        let got = expand(template, *value);
        match want {
            Ok(w) => assert_eq!(got.as_deref(), Ok(*w), "{template} at {value}"),
            Err(w) => {
                let e = got.expect_err(template);
                assert!(e.contains(w), "{template}: {e}");
            }
        }
    }
    let ranges = [
        ("1-3", Some((1, 3, 1))),
        ("0-10/5", Some((0, 10, 5))),
        ("3-3", Some((3, 3, 1))),
        ("5-1", None),
        ("1-3/0", None),
        ("1-2147483648", None),
        ("-1-3", None),
        ("x", None),
    ];
    for (text, want) in ranges {
        assert_eq!(parse_range(text), want, "{text}");
    }
}

#[test]
fn generate_makes_records() {
    let z = load(
        "$GENERATE 1-3 host$ A 192.0.2.$\n\
         $GENERATE 0-4/2 ${0,2,x}.rev 60 IN PTR host$.example.com.\n\
         $GENERATE 1-2 m$ MX \"10 mail$\"\n\
         $GENERATE 1-2 w$ IN 120 CNAME www\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for (name, rtype, want) in [
        ("host1.example.com.", rdata::T_A, vec!["c0000201"]),
        ("host3.example.com.", rdata::T_A, vec!["c0000203"]),
        ("00.rev.example.com.", rdata::T_PTR, vec!["05686f737430c000"]),
        ("04.rev.example.com.", rdata::T_PTR, vec!["05686f737434c000"]),
        ("02.rev.example.com.", rdata::T_PTR, vec!["05686f737432c000"]),
        ("01.rev.example.com.", rdata::T_PTR, vec![]),
        ("m2.example.com.", rdata::T_MX, vec!["000a056d61696c32c000"]),
        ("w1.example.com.", rdata::T_CNAME, vec!["03777777c000"]),
    ] {
        assert_eq!(rdatas(&z, name, rtype), want, "{name}");
    }
    assert!(z.node(Name::parse("host4.example.com.", None).unwrap().wire()).is_none());
    let ttl = |n: &str| z.node(Name::parse(n, None).unwrap().wire()).unwrap().rrsets[0].ttl;
    assert_eq!(
        (ttl("02.rev.example.com."), ttl("w2.example.com."), ttl("host1.example.com.")),
        (60, 120, 300)
    );
}

#[test]
fn generate_errors() {
    check_err("$GENERATE 5-1 h$ A 192.0.2.$\n", &["z.zone:5:11: invalid $GENERATE range \"5-1\""]);
    check_err(
        "$GENERATE 0-2000000 h$ A 192.0.2.1\n",
        &["makes 2000001 records, more than 1048576"],
    );
    check_err("$GENERATE 1-3 h$ A\n", &["z.zone:5:1: $GENERATE needs a range, an owner"]);
    check_err("$GENERATE 1-3 h$ 60 A\n", &["z.zone:5:1: $GENERATE needs a type and rdata"]);
    check_err("$GENERATE 1-3 h${x} A 192.0.2.1\n", &["z.zone:5:15: invalid $GENERATE modifier"]);
    check_err("$GENERATE 1-3 h$ FOO 1\n", &["z.zone:5:18: unknown record type \"FOO\""]);
    // A template that fails at one value is reported once, at the directive's line.
    let e = load("$GENERATE 250-300 h$ A 192.0.2.$\n").unwrap_err();
    assert_eq!(e.matches("invalid IPv4 address").count(), 1, "{e}");
    assert!(e.contains("z.zone:5:24: invalid IPv4 address"), "{e}");
}

/// The history IXFR sends: each later serial adds how the zone changed, names written out;
/// a change without a later serial, or a serial that goes back, starts afresh.
#[test]
fn history_of_versions() {
    let version = |serial: u32, body: &str| {
        parse(
            &origin(),
            Path::new("z.zone"),
            &format!(
                "$TTL 300\n@ SOA ns1 host {serial} 2 3 4 60\n  NS ns1\nns1 A 192.0.2.1\n{body}"
            ),
        )
        .unwrap()
    };
    let v1 = version(1, "a A 192.0.2.10\nb A 192.0.2.11\n");
    let mut v2 = version(2, "a A 192.0.2.10\nb A 192.0.2.12\nc CNAME a\n");
    v2.follow(&v1);
    assert_eq!(v2.history.len(), 1);
    let d = &v2.history[0];
    assert_eq!((d.from, d.to, d.deleted.len(), d.added.len()), (1, 2, 1, 2));
    // Written out: b's old address, and c's CNAME with its target in full.
    assert!(d.deleted[0].ends_with(&[192, 0, 2, 11]));
    let cname = d.added.iter().find(|r| r.windows(2).any(|w| w == [0, 5])).unwrap();
    assert!(cname.ends_with(b"\x01a\x07example\x03com\x00"), "{cname:?}");
    let mut v3 = version(3, "a A 192.0.2.10\nb A 192.0.2.12\nc CNAME a\nd TXT x\n");
    v3.follow(&v2);
    assert_eq!(v3.history.iter().map(|d| (d.from, d.to)).collect::<Vec<_>>(), [(1, 2), (2, 3)]);
    // The same serial and the same records: kept. Changed records, same serial: gone.
    let mut same = version(3, "a A 192.0.2.10\nb A 192.0.2.12\nc CNAME a\nd TXT x\n");
    same.follow(&v3);
    assert_eq!(same.history.len(), 2);
    let mut sneaky = version(3, "a A 192.0.2.10\n");
    sneaky.follow(&v3);
    assert!(sneaky.history.is_empty());
    let mut back = version(2, "a A 192.0.2.10\n");
    back.follow(&v3);
    assert!(back.history.is_empty());
    assert_eq!(v3.soa_with(7)[..].rchunks(4).nth(4), Some(&7u32.to_be_bytes()[..]));
}

#[test]
fn an_unavailable_zone_wins_over_its_parent_by_longest_match() {
    let parent = load("").unwrap();
    let sub = Name::parse("sub.example.com.", None).unwrap();
    let other = Name::parse("other.net.", None).unwrap();
    let set = ZoneSet::new(vec![parent], vec![sub, other]);
    let at = |q: &str| {
        let n = Name::parse(q, None).unwrap().to_lowercase();
        match set.find(n.wire(), &Labels::new(n.wire())) {
            Some(Authority::Zone(z, i)) => format!("{} at label {i}", z.origin()),
            Some(Authority::Unavailable) => "unavailable".into(),
            None => "none".into(),
        }
    };
    // (query name, where it falls)
    for (q, want) in [
        ("www.example.com.", "example.com. at label 1"),
        ("example.com.", "example.com. at label 0"),
        ("sub.example.com.", "unavailable"),
        ("a.b.sub.example.com.", "unavailable"),
        ("other.net.", "unavailable"),
        ("example.org.", "none"),
    ] {
        assert_eq!(at(q), want, "{q}");
    }
    // Without unavailable zones, the plain lookup answers the same for served ones.
    let plain = ZoneSet::new(vec![load("").unwrap()], vec![]);
    let n = Name::parse("a.sub.example.com.", None).unwrap();
    assert!(matches!(plain.find(n.wire(), &Labels::new(n.wire())), Some(Authority::Zone(_, 2))));
}
