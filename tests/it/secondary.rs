//! Secondary mode against a real primary: Debian's Knot, started here on loopback serving a
//! zone file, with a TSIG key made by `tsig-keygen`, sending NOTIFY to an in-process Meridian
//! that has the zone as `primaries = [...]`. Meridian transfers the zone at start (AXFR),
//! follows a change by NOTIFY and IXFR, keeps its copy on disk so a restart with the primary
//! down serves at once, answers SERVFAIL past the SOA's expire, and serves again when the
//! primary is back. A traffic-managed name overlays the transferred zone.

use crate::harness::*;
use meridian::app::{Options, start};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The primary's zone at `serial`, with `api`'s address and the SOA timers given.
fn zone(serial: u32, api: &str, timers: &str) -> String {
    format!(
        "$TTL 300\n@ SOA ns hostmaster {serial} {timers}\n@ NS ns\nns A 192.0.2.1\n\
         api A {api}\nmail MX 10 api\ntxt TXT \"a \\\"quoted\\\" string\" \"two\"\n\
         _sip._tcp SRV 10 5 5060 api\nsub NS ns.sub\nns.sub A 192.0.2.53\n\
         caa CAA 0 issue \"ca.example\"\n"
    )
}

fn knot(conf: &std::path::Path) -> Daemon {
    Daemon(
        Command::new("/usr/sbin/knotd")
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd is installed by the test command"),
    )
}

/// Has Knot load its zone file again (whatever its modification time says).
fn knot_reload(conf: &std::path::Path) {
    let out = Command::new("/usr/sbin/knotc")
        .arg("-c")
        .arg(conf)
        .args(["zone-reload", "sec.test"])
        .output()
        .expect("knotc is installed by the test command");
    assert!(out.status.success(), "{out:?}");
}

fn status(admin: &str) -> serde_json::Value {
    get_json(admin, "/v1/status").expect("the admin API answers")["secondaries"][0].clone()
}

/// Waits (at most 30 s) until `dig` of `args` at `port` has status `want` (NOERROR, SERVFAIL).
fn rcode_until(port: u16, args: &[&str], want: &str, log: &std::path::Path) -> Duration {
    let start = Instant::now();
    loop {
        let got = dig_at(port, args);
        if got.contains(&format!("status: {want}")) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{args:?} never {want}:\n{got}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meridian_follows_a_knot_primary() {
    let dir = TempDir::new();
    let key_text = tsig_keygen("xfr-key");
    dir.write("xfr.key", &key_text);
    let (_, _, secret) = meridian::dns::tsig::parse_bind_keys(&key_text).unwrap().remove(0);
    let (mport, kport) = (free_port(), free_port());
    let d = dir.path().to_path_buf();

    // Knot, the primary: the zone from its file, IXFR from the differences between versions of
    // the file, NOTIFY to Meridian, transfers only with the key.
    std::fs::create_dir_all(d.join("knot/db")).unwrap();
    let zone_file = d.join("knot/sec.test.zone");
    std::fs::write(&zone_file, zone(1, "192.0.2.10", "3600 1 3600 60")).unwrap();
    let conf = d.join("knot/knot.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  listen: 127.0.0.1@{kport}\n  rundir: \"{k}\"\n\
             log:\n  - target: \"{k}/knot.log\"\n    any: info\n\
             database:\n  storage: \"{k}/db\"\n\
             key:\n  - id: xfr-key\n    algorithm: hmac-sha256\n    secret: {secret}\n\
             remote:\n  - id: meridian\n    address: 127.0.0.1@{mport}\n    key: xfr-key\n\
             acl:\n  - id: to_meridian\n    address: 127.0.0.1\n    key: xfr-key\n    action: transfer\n\
             template:\n  - id: default\n    storage: \"{k}\"\n    zonefile-load: difference\n\
             \x20   zonefile-sync: -1\n    journal-content: changes\n\
             zone:\n  - domain: sec.test\n    file: \"{k}/sec.test.zone\"\n    notify: meridian\n\
             \x20   acl: to_meridian\n",
            k = d.join("knot").display()
        ),
    )
    .unwrap();
    let knot_log = d.join("knot/knot.log");
    let mut primary = Some(knot(&conf));
    dig_until(
        "Knot",
        kport,
        &["sec.test", "SOA"],
        "ns.sec.test. hostmaster.sec.test. 1 3600 1 3600 60",
        &[&knot_log],
    );

    let cfg = dir.write(
        "meridian.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{mport}\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [[key]]\nbind_file = \"xfr.key\"\n\
             [[zone]]\nname = \"sec.test\"\nfile = \"sec.copy\"\n\
             primaries = [\"127.0.0.1:{kport}\"]\nprimary_key = \"xfr-key\"\n\
             [[profile]]\nname = \"www.sec.test\"\nmethod = \"priority\"\nttl = 30\n\
             [[profile.endpoint]]\nname = \"onprem\"\naddress = \"192.0.2.80\"\npriority = 1\n"
        ),
    );
    let mut srv = TestServer::start_config(dir, cfg.clone()).await;
    let admin = srv.running.as_ref().unwrap().admin_addr().unwrap().to_string();
    let logs = [knot_log.as_path()];

    // At start: the whole zone by AXFR, served, and the profile answering on top of it.
    dig_until("Meridian", mport, &["api.sec.test"], "192.0.2.10", &logs);
    dig_until("Meridian", mport, &["www.sec.test"], "192.0.2.80", &logs);
    dig_until("Meridian", mport, &["mail.sec.test", "MX"], "10 api.sec.test.", &logs);
    dig_until(
        "Meridian",
        mport,
        &["txt.sec.test", "TXT"],
        "\"a \\\"quoted\\\" string\" \"two\"",
        &logs,
    );
    dig_until("Meridian", mport, &["_sip._tcp.sec.test", "SRV"], "10 5 5060 api.sec.test.", &logs);
    dig_until("Meridian", mport, &["caa.sec.test", "CAA"], "0 issue \"ca.example\"", &logs);
    let referral = dig_at(mport, &["x.sub.sec.test"]);
    assert!(referral.contains("ns.sub.sec.test.") && referral.contains("192.0.2.53"), "{referral}");
    let s = status(&admin);
    assert_eq!(s["state"], "serving", "{s}");
    assert_eq!(s["serial"], 1, "{s}");
    assert_eq!(s["last_transfer_kind"], "AXFR", "{s}");
    assert_eq!(s["last_transfer_from"], format!("127.0.0.1:{kport}"), "{s}");
    let copy = std::fs::read_to_string(srv.dir.path().join("sec.copy")).unwrap();
    assert!(copy.starts_with("; zone sec.test. serial 1, AXFR from 127.0.0.1:"), "{copy}");
    assert!(copy.contains("api.sec.test. 300 IN A 192.0.2.10"), "{copy}");

    // NOTIFY is taken only from a primary, signed with the zone's key.
    let key = srv.dir.path().join("xfr.key").display().to_string();
    let elsewhere =
        dig_at(mport, &["-b", "127.0.0.2", "-k", &key, "+opcode=notify", "sec.test", "SOA"]);
    assert!(elsewhere.contains("opcode: NOTIFY, status: REFUSED"), "{elsewhere}");
    assert!(
        elsewhere.contains("OPT PSEUDOSECTION"),
        "dig sent OPT, so one comes back:\n{elsewhere}"
    );
    let unsigned = dig_at(mport, &["+opcode=notify", "sec.test", "SOA"]);
    assert!(unsigned.contains("opcode: NOTIFY, status: REFUSED"), "{unsigned}");
    let signed = dig_at(mport, &["-k", &key, "+opcode=notify", "sec.test", "SOA"]);
    assert!(
        signed.contains("opcode: NOTIFY, status: NOERROR") && signed.contains("flags: qr aa"),
        "{signed}"
    );
    // Signed back, and dig found the signature good (it says so when it is not).
    assert!(signed.contains("xfr-key.\t\t0\tANY\tTSIG\thmac-sha256."), "{signed}");
    assert!(!signed.to_lowercase().contains("verify"), "{signed}");
    let not_ours = dig_at(mport, &["-k", &key, "+opcode=notify", "other.test", "SOA"]);
    // A zone we are not a secondary of: NOTIFY is not something we do for it.
    assert!(not_ours.contains("status: NOTIMP"), "{not_ours}");

    // A change on the primary: Knot NOTIFYs (the SOA refresh is an hour, so nothing else
    // would tell), Meridian asks for IXFR and gets the differences.
    std::fs::write(&zone_file, zone(2, "192.0.2.99", "3600 1 3600 60")).unwrap();
    knot_reload(&conf);
    dig_until("Meridian after NOTIFY", mport, &["api.sec.test"], "192.0.2.99", &logs);
    let s = status(&admin);
    assert_eq!(s["serial"], 2, "{s}");
    assert_eq!(s["last_transfer_kind"], "IXFR", "{s}");
    assert!(s["notifies"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["transfers"], 2, "{s}");
    let klog = std::fs::read_to_string(&knot_log).unwrap();
    assert!(klog.contains("[sec.test.] IXFR, outgoing"), "{klog}");
    assert!(klog.contains("[sec.test.] notify, outgoing"), "{klog}");
    // The metrics say the same.
    let metrics = http_get(&admin, "/metrics");
    assert!(metrics.contains("meridian_zone_serial{zone=\"sec.test.\"} 2"), "{metrics}");
    assert!(
        metrics.contains("meridian_zone_transfers_total{zone=\"sec.test.\",result=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("meridian_zone_available{zone=\"sec.test.\"} 1"), "{metrics}");

    // A version Meridian cannot serve (Knot serves DNAME, Meridian's zones do not take it):
    // the transfer is refused as a zone file with it would be, and the old data stays.
    let bad = zone(3, "192.0.2.66", "3600 1 3600 60") + "old DNAME new.example.\n";
    std::fs::write(&zone_file, bad).unwrap();
    knot_reload(&conf);
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = status(&admin);
        if s["last_error"].as_str().is_some_and(|e| e.contains("DNAME")) {
            break s;
        }
        assert!(Instant::now() < deadline, "the DNAME version was never refused: {s}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(s["last_error"].as_str().unwrap().contains("the transferred zone is not valid"), "{s}");
    assert_eq!(s["serial"], 2, "{s}");
    assert_eq!(dig_at(mport, &["api.sec.test", "+short"]).trim(), "192.0.2.99");
    assert!(
        std::fs::read_to_string(srv.dir.path().join("sec.copy")).unwrap().contains("serial 2,")
    );

    // Fixed, with short timers from now on (retry 1 s, expire 6 s): IXFR from 2 across both
    // versions.
    std::fs::write(&zone_file, zone(4, "192.0.2.99", "2 1 6 60")).unwrap();
    knot_reload(&conf);
    dig_until(
        "Meridian",
        mport,
        &["sec.test", "SOA"],
        "ns.sec.test. hostmaster.sec.test. 4 2 1 6 60",
        &logs,
    );

    let s = status(&admin);
    assert_eq!(
        (s["last_transfer_kind"].as_str(), s["last_error"].is_null()),
        (Some("IXFR"), true),
        "{s}"
    );

    // The primary goes away, and Meridian restarts: it serves its copy at once.
    drop(primary.take());
    srv.running.take().unwrap().shutdown().await;
    srv.running =
        Some(start(Options { config: cfg.clone(), reload_on_sighup: false }).await.unwrap());
    let admin = srv.running.as_ref().unwrap().admin_addr().unwrap().to_string();
    let first = dig_at(mport, &["api.sec.test", "+short"]);
    assert_eq!(first.trim(), "192.0.2.99", "served from the copy at once");
    // Refreshes fail (nothing listens), the old data stays until the expire, then SERVFAIL.
    let took = rcode_until(mport, &["api.sec.test"], "SERVFAIL", &knot_log);
    let s = status(&admin);
    assert_eq!(s["state"], "expired", "{s}");
    assert!(s["failures"].as_u64().unwrap() >= 1, "{s}");
    assert!(s["last_error"].as_str().unwrap().contains(&format!("127.0.0.1:{kport}")), "{s}");
    assert!(took <= Duration::from_secs(10), "expired after {took:?}");
    let metrics = http_get(&admin, "/metrics");
    assert!(metrics.contains("meridian_zone_available{zone=\"sec.test.\"} 0"), "{metrics}");

    // The primary is back: the next retry reaches it and the zone is served again.
    let _primary = knot(&conf);
    rcode_until(mport, &["api.sec.test"], "NOERROR", &knot_log);
    dig_until("Meridian", mport, &["api.sec.test"], "192.0.2.99", &logs);
    assert_eq!(status(&admin)["state"], "serving");
    srv.stop().await;
}
