//! Outgoing zone transfers to real secondaries: Debian's NSD and Knot, started here on
//! loopback as secondaries of an in-process Meridian, with a TSIG key made by `tsig-keygen`.
//! They load the zone at start, and after a reload that changes the serial Meridian NOTIFYs
//! them and both serve the new data. Transfers from elsewhere, or unsigned, are refused.

use crate::harness::*;
use std::process::{Command, Stdio};

use crate::harness::{Daemon, dig_at as dig, dig_until as until};

fn zone(serial: u32, api: &str) -> String {
    format!(
        "$TTL 300\n@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n\
         api A {api}\nmail MX 10 api\nsub NS ns.sub\nns.sub A 192.0.2.53\n\
         $GENERATE 1-2000 h$ TXT v$\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsd_and_knot_follow_meridian() {
    let dir = TempDir::new();
    let key_text = tsig_keygen("xfr-key");
    dir.write("xfr.key", &key_text);
    let (_, _, secret) = meridian::dns::tsig::parse_bind_keys(&key_text).unwrap().remove(0);
    let (mport, nport, kport) = (free_port(), free_port(), free_port());
    dir.write("z.zone", &zone(1, "192.0.2.10"));
    // A second zone with no traffic-managed name: its changes can go as IXFR differences.
    dir.write("p.zone", &zone(1, "192.0.2.10"));
    let cfg = dir.write(
        "meridian.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:{mport}\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [[key]]\nbind_file = \"xfr.key\"\n\
             [[zone]]\nname = \"xfr.test\"\nfile = \"z.zone\"\n\
             allow_transfer = [\"127.0.0.1\"]\ntransfer_key = \"xfr-key\"\n\
             notify = [\"127.0.0.1:{nport}\", \"127.0.0.1:{kport}\"]\n\
             [[zone]]\nname = \"plain.test\"\nfile = \"p.zone\"\n\
             allow_transfer = [\"127.0.0.1\"]\ntransfer_key = \"xfr-key\"\n\
             notify = [\"127.0.0.1:{nport}\", \"127.0.0.1:{kport}\"]\n\
             [[profile]]\nname = \"www.xfr.test\"\nmethod = \"priority\"\nttl = 30\n\
             [[profile.endpoint]]\nname = \"onprem\"\naddress = \"192.0.2.80\"\npriority = 1\n\
             [[profile.endpoint]]\nname = \"cloud\"\naddress = \"198.51.100.80\"\npriority = 2\n"
        ),
    );
    let srv = TestServer::start_config(dir, cfg).await;
    let d = srv.dir.path().to_path_buf();

    // NSD, a secondary with the key.
    std::fs::create_dir_all(d.join("nsd")).unwrap();
    let nsd_conf = d.join("nsd/nsd.conf");
    std::fs::write(
        &nsd_conf,
        format!(
            "server:\n  ip-address: 127.0.0.1@{nport}\n  server-count: 1\n  username: \"\"\n  chroot: \"\"\n\
             \x20 database: \"\"\n  zonelistfile: \"{n}/zone.list\"\n  xfrdfile: \"{n}/xfrd.state\"\n\
             \x20 xfrdir: \"{n}\"\n  pidfile: \"{n}/nsd.pid\"\n  logfile: \"{n}/nsd.log\"\n  verbosity: 2\n\
             remote-control:\n  control-enable: no\n\
             key:\n  name: \"xfr-key\"\n  algorithm: hmac-sha256\n  secret: \"{secret}\"\n\
             zone:\n  name: xfr.test\n  zonefile: \"{n}/xfr.test.zone\"\n\
             \x20 request-xfr: 127.0.0.1@{mport} xfr-key\n  allow-notify: 127.0.0.1 xfr-key\n\
             zone:\n  name: plain.test\n  zonefile: \"{n}/plain.test.zone\"\n\
             \x20 request-xfr: 127.0.0.1@{mport} xfr-key\n  allow-notify: 127.0.0.1 xfr-key\n",
            n = d.join("nsd").display()
        ),
    )
    .unwrap();
    let nsd = Daemon(
        Command::new("/usr/sbin/nsd")
            .args(["-d", "-c"])
            .arg(&nsd_conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nsd is installed by the test command"),
    );
    // Knot, another.
    std::fs::create_dir_all(d.join("knot/db")).unwrap();
    let knot_conf = d.join("knot/knot.conf");
    std::fs::write(
        &knot_conf,
        format!(
            "server:\n  listen: 127.0.0.1@{kport}\n  rundir: \"{k}\"\n\
             log:\n  - target: \"{k}/knot.log\"\n    any: info\n\
             database:\n  storage: \"{k}/db\"\n\
             key:\n  - id: xfr-key\n    algorithm: hmac-sha256\n    secret: {secret}\n\
             remote:\n  - id: primary\n    address: 127.0.0.1@{mport}\n    key: xfr-key\n\
             acl:\n  - id: from_primary\n    address: 127.0.0.1\n    key: xfr-key\n    action: notify\n\
             template:\n  - id: default\n    storage: \"{k}\"\n\
             zone:\n  - domain: xfr.test\n    master: primary\n    acl: from_primary\n\
             \x20 - domain: plain.test\n    master: primary\n    acl: from_primary\n",
            k = d.join("knot").display()
        ),
    )
    .unwrap();
    let knot = Daemon(
        Command::new("/usr/sbin/knotd")
            .arg("-c")
            .arg(&knot_conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd is installed by the test command"),
    );
    let logs = [d.join("nsd/nsd.log"), d.join("knot/knot.log")];
    let logs: Vec<&std::path::Path> = logs.iter().map(|p| p.as_path()).collect();

    // Both load the zone from Meridian: its records, and the traffic-managed name as an
    // unlocated client is answered (the priority endpoint).
    for (who, port) in [("NSD", nport), ("Knot", kport)] {
        until(
            who,
            port,
            &["xfr.test", "SOA"],
            "ns.xfr.test. hostmaster.xfr.test. 1 3600 600 86400 60",
            &logs,
        );
        until(who, port, &["api.xfr.test"], "192.0.2.10", &logs);
        until(who, port, &["www.xfr.test"], "192.0.2.80", &logs);
        until(who, port, &["mail.xfr.test", "MX"], "10 api.xfr.test.", &logs);
        until(who, port, &["h2000.xfr.test", "TXT"], "\"v2000\"", &logs);
        until(who, port, &["api.plain.test"], "192.0.2.10", &logs);
    }

    // A reload with a new serial: both are told, transfer again and serve the change.
    srv.dir.write("z.zone", &zone(2, "192.0.2.99"));
    srv.dir.write("p.zone", &zone(2, "192.0.2.99"));
    srv.running.as_ref().unwrap().reload().await.unwrap();
    for (who, port) in [("NSD", nport), ("Knot", kport)] {
        until(who, port, &["api.xfr.test"], "192.0.2.99", &logs);
        until(
            who,
            port,
            &["xfr.test", "SOA"],
            "ns.xfr.test. hostmaster.xfr.test. 2 3600 600 86400 60",
            &logs,
        );
        until(who, port, &["api.plain.test"], "192.0.2.99", &logs);
        until(who, port, &["h1999.plain.test", "TXT"], "\"v1999\"", &logs);
    }
    // They learnt it from a NOTIFY (their SOA refresh is an hour): each logs one.
    let nsd_log = std::fs::read_to_string(logs[0]).unwrap_or_default();
    let knot_log = std::fs::read_to_string(logs[1]).unwrap_or_default();
    assert!(nsd_log.to_lowercase().contains("notify"), "NSD's log:\n{nsd_log}");
    // The NOTIFY carries the SOA, so Knot knows the new serial from it.
    assert!(knot_log.contains("[plain.test.] notify, incoming, remote 127.0.0.1@"), "{knot_log}");
    assert!(knot_log.contains(", serial 2"), "Knot's log:\n{knot_log}");
    // Knot asked for an IXFR and took the whole zone in its place (RFC 1995 §4).
    // Knot asked for IXFRs: the zone with a traffic-managed name came whole (RFC 1995 §4),
    // the other as its differences (one record deleted, one added).
    let of = |zone: &str| -> Vec<&str> {
        knot_log.lines().filter(|l| l.contains(&format!("[{zone}.] IXFR, incoming"))).collect()
    };
    assert!(of("xfr.test").iter().any(|l| l.contains("AXFR-style")), "{knot_log}");
    assert!(of("plain.test").iter().any(|l| l.contains("finished")), "{knot_log}");
    assert!(!of("plain.test").iter().any(|l| l.contains("AXFR-style")), "{knot_log}");
    assert!(!of("plain.test").iter().any(|l| l.contains("failed")), "{knot_log}");

    // Refused: unsigned, and from another address even when signed.
    let unsigned = dig(mport, &["xfr.test", "AXFR"]);
    assert!(unsigned.contains("Transfer failed"), "{unsigned}");
    let key = srv.dir.path().join("xfr.key").display().to_string();
    let elsewhere = dig(mport, &["-b", "127.0.0.2", "-k", &key, "xfr.test", "AXFR"]);
    assert!(elsewhere.contains("Transfer failed"), "{elsewhere}");
    // Signed from an allowed address: the whole zone, every message's TSIG verified by dig.
    let axfr = dig(mport, &["-k", &key, "xfr.test", "AXFR"]);
    // 2009 records: more than one message, each signed and chained to the one before.
    let size =
        axfr.lines().find(|l| l.starts_with(";; XFR size: ")).unwrap_or_else(|| panic!("{axfr}"));
    assert!(size.starts_with(";; XFR size: 2009 records (messages 3,"), "{size}");
    assert!(!axfr.contains("failed") && axfr.matches("\tTSIG\t").count() == 3, "{size}");
    assert!(axfr.contains("www.xfr.test.\t\t30\tIN\tA\t192.0.2.80"), "{axfr}");
    drop((nsd, knot));
    srv.stop().await;
}
