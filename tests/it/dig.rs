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

/// A server on an ephemeral port with NSID, an identity, cookies keyed by `secret` (and
/// `accept`), and rate limiting at `rate` answers per second with no slip.
async fn cookie_server(secret: &str, accept: &str, rate: u32) -> crate::harness::TestServer {
    use crate::harness::*;
    let dir = TempDir::new();
    let zone = repo().join("zones/app.example.com.zone");
    let cfg = dir.write(
        "meridian.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nnsid = \"meridian-test-1\"\nidentity = \"edge-7\"\n\
             [server.rrl]\nresponses_per_second = {rate}\nslip = 0\n\
             [server.cookies]\nsecret = \"{secret}\"\naccept = [{accept}]\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [[zone]]\nname = \"app.example.com\"\nfile = \"{}\"\n",
            zone.display()
        ),
    );
    TestServer::start_config(dir, cfg).await
}

/// A query for api.app.example.com A carrying COOKIE `data` (client cookie, then the server
/// cookie if any).
fn with_cookie(data: &[u8]) -> Vec<u8> {
    use crate::harness::*;
    use hickory_proto::rr::rdata::opt::EdnsOption;
    let mut q = query("api.app.example.com.", "A", Some(1232));
    q.edns.as_mut().unwrap().options_mut().insert(EdnsOption::Unknown(10, data.to_vec()));
    bytes(&q)
}

/// The COOKIE option of an answer.
fn cookie_of(answer: &[u8]) -> Vec<u8> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let m = hickory_proto::op::Message::from_vec(answer).unwrap();
    match m.edns.as_ref().and_then(|e| e.option(EdnsCode::Cookie)) {
        Some(EdnsOption::Unknown(10, d)) => d.clone(),
        other => panic!("no COOKIE in the answer: {other:?}"),
    }
}

/// How many of `n` queries sent back to back (well within one second) are answered: all are
/// sent first, then replies are counted until none has come for 300 ms.
async fn answered(srv: &crate::harness::TestServer, q: &[u8], n: usize) -> usize {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..n {
        sock.send_to(q, srv.addr).await.unwrap();
    }
    let mut got = 0;
    let mut buf = [0u8; 1500];
    let quiet = std::time::Duration::from_millis(300);
    while tokio::time::timeout(quiet, sock.recv(&mut buf)).await.is_ok() {
        got += 1;
    }
    got
}

const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";
const NEXT: &str = "445536bcd2513298075a5d379663c962";

/// NSID and the CH identity names, seen by dig and kdig; DNS cookies (RFC 7873, RFC 9018)
/// made and checked: dig and kdig get a server cookie back and dig calls it good, a valid one
/// exempts its source from rate limiting, another instance with the same secret accepts it,
/// a rollover keeps it valid, and a malformed COOKIE option is FORMERR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsid_identity_and_cookies() {
    // dig and kdig first, unlimited; rate limiting at 1 per second for the rest.
    let tools = cookie_server(SECRET, "", 1000).await;
    let port = tools.addr.port().to_string();
    let run = |tool: &str, args: &[&str]| {
        let retries = if tool == "kdig" { "+retry=0" } else { "+tries=1" };
        let out = Command::new(tool)
            .args(["@127.0.0.1", "-p", &port, "+time=2", retries])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool} is installed by the test command: {e}"));
        String::from_utf8(out.stdout).unwrap()
    };
    let dig = |args: &[&str]| run("dig", args);
    let kdig = |args: &[&str]| run("kdig", args);

    let a = dig(&["+nsid", "api.app.example.com"]);
    assert!(
        a.contains("; NSID: 6d 65 72 69 64 69 61 6e 2d 74 65 73 74 2d 31 (\"meridian-test-1\")"),
        "{a}"
    );
    let a = kdig(&["+nsid", "api.app.example.com"]);
    assert!(a.contains("NSID: 6D6572696469616E2D746573742D31 \"meridian-test-1\""), "{a}");
    for name in ["id.server", "hostname.bind"] {
        assert_eq!(dig(&["CH", "TXT", name, "+short"]), "\"edge-7\"\n", "{name}");
    }
    assert!(dig(&["CH", "TXT", "version.bind"]).contains("status: REFUSED"));

    // dig and kdig send a client cookie and get a server cookie of RFC 9018's form back.
    let a = dig(&["+cookie", "api.app.example.com"]);
    let line = a.lines().find(|l| l.starts_with("; COOKIE: ")).unwrap_or_else(|| panic!("{a}"));
    assert!(line.ends_with(" (good)") && line[26..34] == *"01000000", "{line}");
    let cookie = line[10..58].to_string();
    let a = dig(&[&format!("+cookie={cookie}"), "api.app.example.com"]);
    assert!(a.contains(" (good)") && a.contains("192.0.2.10"), "{a}");
    let a = kdig(&[&format!("+cookie={cookie}"), "api.app.example.com"]);
    let line = a.lines().find(|l| l.starts_with(";; COOKIE: ")).unwrap_or_else(|| panic!("{a}"));
    assert!(
        line[11..27].eq_ignore_ascii_case(&cookie[..16]) && line[27..35] == *"01000000",
        "{line}"
    );

    // Malformed COOKIE options (RFC 7873 §5.2.2): FORMERR.
    for len in [9, 15, 41] {
        let a = crate::harness::render(&tools.udp(&with_cookie(&vec![1; len])).await.unwrap());
        assert!(a.starts_with("FORMERR"), "{len}: {a}");
    }

    tools.stop().await;

    let srv = cookie_server(SECRET, "", 1).await;
    // A client cookie alone gets the answer and a fresh server cookie.
    let client = [7u8, 6, 5, 4, 3, 2, 1, 0];
    let reply = srv.udp(&with_cookie(&client)).await.unwrap();
    let full = cookie_of(&reply);
    assert_eq!((full.len(), &full[..8], &full[8..12]), (24, &client[..], &[1, 0, 0, 0][..]));
    // At one answer per second, 10 queries without a valid cookie get at most two answers
    // (the second may cross into a new second); with the cookie just given, all 10.
    let bare = with_cookie(&client);
    assert!(answered(&srv, &bare, 10).await <= 2);
    let good = with_cookie(&full);
    assert_eq!(answered(&srv, &good, 10).await, 10);
    // A server cookie we did not make, or one for another client cookie, is no exemption.
    let mut forged = full.clone();
    forged[20] ^= 1;
    assert!(answered(&srv, &with_cookie(&forged), 10).await <= 2);
    // Another instance with the same secret accepts it; after a rollover (the new secret
    // makes cookies, the old one is still accepted) so does this one, and it hands out
    // cookies made with the new secret.
    let peer = cookie_server(SECRET, "", 1).await;
    assert_eq!(answered(&peer, &good, 10).await, 10);
    let rolled = cookie_server(NEXT, &format!("\"{SECRET}\""), 1).await;
    assert_eq!(answered(&rolled, &good, 10).await, 10);
    let fresh = cookie_of(&rolled.udp(&good).await.unwrap());
    assert_ne!(fresh[16..], full[16..]);
    let without_old = cookie_server(NEXT, "", 1).await;
    assert!(answered(&without_old, &good, 10).await <= 2);
    assert_eq!(answered(&without_old, &with_cookie(&fresh), 10).await, 10);
    for s in [srv, peer, rolled, without_old] {
        s.stop().await;
    }
}

/// TSIG (RFC 8945) with real clients and real keys: `tsig-keygen` makes a BIND key file
/// that the configuration reads as is; dig (`-k`, `-y`) and kdig send signed queries over UDP
/// and TCP and verify the signed answers; a key we do not know, a wrong secret and a clock an
/// hour off get NOTAUTH with BADKEY, BADSIG (unsigned) and BADTIME (signed, our time in Other
/// Data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_with_dig_kdig_and_tsig_keygen() {
    use crate::harness::*;
    let dir = TempDir::new();
    let key_file = dir.write("xfr.key", &tsig_keygen("xfr-key"));
    // A second key, SHA-512, from a file holding just the base64 secret.
    let secret512 = "bWVyaWRpYW4tdHNpZy10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
    dir.write("other.secret", &format!("{secret512}\n"));
    let zone = repo().join("zones/app.example.com.zone");
    let cfg = dir.write(
        "meridian.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [[key]]\nbind_file = \"xfr.key\"\n\
             [[key]]\nname = \"other\"\nalgorithm = \"hmac-sha512\"\nsecret_file = \"other.secret\"\n\
             [[zone]]\nname = \"app.example.com\"\nfile = \"{}\"\n",
            zone.display()
        ),
    );
    let srv = TestServer::start_config(dir, cfg).await;
    let port = srv.addr.port().to_string();
    let run = |tool: &str, pre: &[&str], args: &[&str]| {
        let retries = if tool == "kdig" { "+retry=0" } else { "+tries=1" };
        let out = Command::new(pre.first().copied().unwrap_or(tool))
            .args(pre.iter().skip(1).chain(if pre.is_empty() { None } else { Some(&tool) }))
            .args(["@127.0.0.1", "-p", &port, "+time=2", retries])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let k = key_file.display().to_string();
    // kdig reads only its own key file format: give it the same key as `-y`.
    let text = std::fs::read_to_string(&key_file).unwrap();
    let (name, alg, secret) = meridian::dns::tsig::parse_bind_keys(&text).unwrap().remove(0);
    let ky = format!("{alg}:{name}:{secret}");
    let good = |out: &str, tool: &str| {
        assert!(out.contains("192.0.2.10"), "{tool}: {out}");
        for bad in ["could not be validated", "failure", "failed to verify", "verification"] {
            assert!(!out.contains(bad), "{tool}: {bad:?} in {out}");
        }
        assert!(out.contains("TSIG") && out.contains("NOERROR"), "{tool}: {out}");
    };
    good(&run("dig", &[], &["-k", &k, "api.app.example.com"]), "dig -k");
    good(&run("dig", &[], &["-k", &k, "+tcp", "api.app.example.com"]), "dig -k +tcp");
    let y = format!("hmac-sha512:other:{secret512}");
    good(&run("dig", &[], &["-y", &y, "api.app.example.com"]), "dig -y");
    good(&run("kdig", &[], &["-y", &ky, "api.app.example.com"]), "kdig -y (tsig-keygen's key)");
    good(&run("kdig", &[], &["-y", &y, "+tcp", "api.app.example.com"]), "kdig -y +tcp");

    let a = run("dig", &[], &["-y", "hmac-sha256:unknown:c2VjcmV0c2VjcmV0", "api.app.example.com"]);
    assert!(a.contains("status: NOTAUTH") && a.contains(" BADKEY "), "{a}");
    assert!(a.contains("TSIG\thmac-sha256. ") && !a.contains("192.0.2.10"), "{a}");
    let a = run("dig", &[], &["-y", "hmac-sha512:other:d3Jvbmcgc2VjcmV0", "api.app.example.com"]);
    assert!(a.contains("status: NOTAUTH") && a.contains(" BADSIG "), "{a}");
    // The same key with another algorithm is another key: BADKEY.
    let a =
        run("kdig", &[], &["-y", &format!("hmac-sha256:other:{secret512}"), "api.app.example.com"]);
    assert!(a.contains("status: BADKEY"), "{a}");
    // kdig an hour ahead (faketime): BADTIME, signed with the request's time, ours in Other
    // Data; kdig finds the MAC good and complains only of the time.
    let a = run("kdig", &["faketime", "-f", "+1h"], &["-y", &ky, "api.app.example.com"]);
    assert!(a.contains("status: BADTIME"), "{a}");
    let line = a.lines().find(|l| l.contains(" BADTIME 6 ")).unwrap_or_else(|| panic!("{a}"));
    let ours: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(now.abs_diff(ours) < 60, "{line}");
    assert!(a.contains("TSIG out of time window") && !a.contains("failed to verify"), "{a}");
    srv.stop().await;
}
