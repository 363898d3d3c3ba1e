//! End to end: the real binary on the shipped default configuration (127.0.0.1:5353), queried
//! with the real `dig` from bind9-dnsutils, exactly as the README shows.

use crate::cli::Served;
use crate::harness::repo;
use std::process::Command;

fn dig(args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", "5353", "+time=2", "+tries=2"])
        .args(args)
        .output()
        .expect("dig is installed (the test command installs bind9-dnsutils)");
    assert!(out.status.success(), "dig {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dig_against_the_default_config() {
    let mut srv = Served::start(&repo(), "meridian.toml");
    assert_eq!(srv.addr().to_string(), "127.0.0.1:5353");

    assert_eq!(dig(&["api.app.example.com", "+short"]), "192.0.2.10\n");
    assert_eq!(dig(&["api.app.example.com", "AAAA", "+short", "+tcp"]), "2001:db8::10\n");
    assert_eq!(
        dig(&["portal.app.example.com", "+short"]),
        "docs.app.example.com.\napi.app.example.com.\n192.0.2.10\n"
    );
    assert_eq!(dig(&["anything.user.app.example.com", "+short"]), "192.0.2.80\n");

    let full = dig(&["nope.app.example.com", "+norec"]);
    assert!(full.contains("status: NXDOMAIN"), "{full}");
    assert!(full.contains("flags: qr aa;"), "{full}");
    assert!(full.contains("app.example.com.\t60\tIN\tSOA\tns1.app.example.com."), "{full}");

    let referral = dig(&["www.eu.app.example.com", "+norec"]);
    assert!(
        referral.contains("flags: qr;") && referral.contains("AUTHORITY: 2, ADDITIONAL: 4"),
        "{referral}"
    );

    let any = dig(&["app.example.com", "ANY", "+norec"]);
    assert!(any.contains("ANSWER: 1,"), "{any}");

    let refused = dig(&["example.org", "+norec"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");

    // The question's case comes back as sent.
    let case = dig(&["ApI.App.Example.COM", "+norec", "+noedns"]);
    let lines: Vec<String> =
        case.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert!(lines.iter().any(|l| l == ";ApI.App.Example.COM. IN A"), "{case}");
    assert!(lines.iter().any(|l| l == "ApI.App.Example.COM. 300 IN A 192.0.2.10"), "{case}");

    // Traffic-managed names from the default configuration.
    assert_eq!(dig(&["www.app.example.com", "+short"]), "127.0.0.11\n");
    // Geographic by source address (the demo GeoIP maps 127.0.1.0/24 to Germany,
    // 127.0.0.0/24 to Washington state, 127.0.3.0/24 to Japan)...
    assert_eq!(dig(&["-b", "127.0.1.1", "geo.app.example.com", "+short"]), "127.0.0.21\n");
    assert_eq!(dig(&["-b", "127.0.0.1", "geo.app.example.com", "+short"]), "127.0.0.22\n");
    assert_eq!(dig(&["-b", "127.0.3.1", "geo.app.example.com", "+short"]), "127.0.0.23\n");
    // ...and by EDNS Client Subnet, with the scope echoed.
    let ecs = dig(&["geo.app.example.com", "+subnet=198.51.100.0/24"]);
    assert!(ecs.contains("CLIENT-SUBNET: 198.51.100.0/24/24"), "{ecs}");
    assert!(ecs.contains("geo.app.example.com.\t60\tIN\tA\t127.0.0.21"), "{ecs}");
    let ecs = dig(&["www.app.example.com", "+subnet=203.0.113.0/24"]);
    assert!(ecs.contains("CLIENT-SUBNET: 203.0.113.0/24/0"), "{ecs}");
    // Weighted: both endpoints show up over a bounded number of queries.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        seen.insert(dig(&["canary.app.example.com", "+short"]));
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["127.0.0.31\n", "127.0.0.32\n"]);

    srv.signal("-TERM");
    assert_eq!(srv.wait_exit(), Some(0));
}
