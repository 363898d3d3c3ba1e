//! The real `meridian` binary: `check` and `serve` exit codes and messages, SIGHUP reload,
//! SIGTERM shutdown.

use crate::harness::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn meridian() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meridian"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    meridian().args(args).current_dir(dir).env_remove("MERIDIAN_LOG").output().unwrap()
}

const ZONE: &str = "$TTL 60\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n";

#[test]
fn check_accepts_the_shipped_config() {
    let out = run(&repo(), &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The whole summary: a changed count, method or listener in the shipped files shows here.
    assert_eq!(
        stdout,
        "meridian.toml: ok
  zone app.example.com.: 26 records
  profile www.app.example.com.: priority, 2 endpoints, burst rule
  profile geo.app.example.com.: geographic, 3 endpoints
  profile canary.app.example.com.: weighted, 2 endpoints
  geoip Meridian-GeoIP (IPv6, 260 nodes; 261 networks, 11 distinct records)
  listen 127.0.0.1:5353 (udp, tcp)
"
    );
}

/// Each broken configuration (with `z.zone` holding `zone`) and the messages `check` must
/// print for it, all at once.
#[test]
fn check_reports_every_problem_with_its_position() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "unknown key",
            "[server]\nlisten = [\"127.0.0.1:5353\"]\nudp_worker = 2\n",
            ZONE,
            &["error: meridian.toml:3:1: unknown field `udp_worker`", "= hint: check the spelling"],
        ),
        (
            "wrong type",
            "[server]\nudp_payload = \"big\"\n",
            ZONE,
            &["error: meridian.toml:2:15: invalid type: string \"big\", expected i64"],
        ),
        (
            "invalid listen address",
            "[server]\nlisten = [\"127.0.0.1:5353\", \"localhost\"]\n",
            ZONE,
            &[
                "error: meridian.toml:2:29: invalid listen address \"localhost\"",
                "= hint: write IP:PORT",
            ],
        ),
        (
            "missing zone file",
            "[[zone]]\nname = \"other.test\"\nfile = \"missing.zone\"\n",
            ZONE,
            &[
                "error: meridian.toml:7:8: cannot read zone file ./missing.zone: No such file or directory",
            ],
        ),
        (
            "duplicate zone",
            "[[zone]]\nname = \"Example.TEST.\"\nfile = \"z.zone\"\n",
            ZONE,
            &[
                "error: meridian.toml:6:8: zone example.test. is defined twice",
                "= hint: the first definition is at meridian.toml:2:8",
            ],
        ),
        (
            "zone file syntax error, with the zone file's line",
            "",
            &format!("{ZONE}www A 192.0.2.1\n  AAAA 2001:db8::1\nbad MX ten mail\n"),
            &["error: ./z.zone:7:8: invalid preference \"ten\": expected 0-65535"],
        ),
        (
            "problems in the configuration and the zone file together",
            "[server]\nlisten = [\"nowhere\"]\n",
            &format!("{ZONE}www CNAME a\nwww TXT hi\n"),
            &[
                "error: ./z.zone:5:1: www.example.test. has a CNAME and other data (TXT)",
                "error: meridian.toml:2:11: invalid listen address \"nowhere\"",
            ],
        ),
    ];
    for (what, extra, zone, expected) in cases {
        let dir = TempDir::new();
        dir.write("z.zone", zone);
        // The zone comes first so positions in `extra` are stable: lines 1-3 are the zone table.
        let (zone_table, rest) = if extra.starts_with("[[zone]]") {
            ("[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n", *extra)
        } else {
            ("", *extra)
        };
        let text = if zone_table.is_empty() {
            format!("{rest}[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n")
        } else {
            format!("{zone_table}\n{rest}")
        };
        dir.write("meridian.toml", &text);
        let out = run(dir.path(), &["check", "-c", "./meridian.toml"]);
        let stderr =
            String::from_utf8_lossy(&out.stderr).replace("./meridian.toml", "meridian.toml");
        assert_eq!(out.status.code(), Some(1), "{what}: exit code; stderr:\n{stderr}");
        for e in *expected {
            assert!(stderr.contains(e), "{what}: expected {e:?} in:\n{stderr}");
        }
        // `serve` refuses the same configuration with the same messages and exit code.
        let out = run(dir.path(), &["serve", "-c", "./meridian.toml"]);
        let serve_err =
            String::from_utf8_lossy(&out.stderr).replace("./meridian.toml", "meridian.toml");
        assert_eq!(out.status.code(), Some(1), "{what}: serve exit code");
        assert!(serve_err.contains(expected[0]), "{what}: serve said:\n{serve_err}");
    }
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let dir = TempDir::new();
    let out = run(dir.path(), &["check", "-c", "nope.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr
            .contains("error: nope.toml:1:1: cannot read configuration: No such file or directory"),
        "{stderr}"
    );
}

/// A `meridian serve` child process whose log lines are collected.
pub struct Served {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Served {
    pub fn start(dir: &Path, config: &str) -> Served {
        Served::start_with(dir, config, &[])
    }

    pub fn start_with(dir: &Path, config: &str, extra: &[&str]) -> Served {
        Served::start_env(dir, config, extra, &[])
    }

    pub fn start_env(dir: &Path, config: &str, extra: &[&str], env: &[(&str, &str)]) -> Served {
        let mut child = meridian()
            .args(["serve", "-c", config])
            .args(extra)
            .envs(env.iter().copied())
            .current_dir(dir)
            .env_remove("MERIDIAN_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Served { child, lines, log: Vec::new() }
    }

    /// Waits (bounded) for a log line containing `needle`; returns it.
    pub fn wait_log(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.log.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no log line with {needle:?}; log so far:\n{}", self.log.join("\n"));
    }

    /// The address from the "serving" log line.
    pub fn addr(&mut self) -> SocketAddr {
        self.logged_addr("serving DNS")
    }

    /// The admin API's address, from its log line.
    pub fn admin_addr(&mut self) -> SocketAddr {
        self.logged_addr("admin API listening")
    }

    fn logged_addr(&mut self, needle: &str) -> SocketAddr {
        let line = self.wait_log(needle);
        let addr = line.split("addr=").nth(1).and_then(|s| s.split_whitespace().next()).unwrap();
        addr.parse().unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Stops the process with SIGTERM and returns every log line it wrote (bounded wait).
    pub fn stop_and_collect(&mut self) -> Vec<String> {
        self.signal("-TERM");
        assert_eq!(self.wait_exit(), Some(0));
        // The reader thread ends when stderr closes; the channel then disconnects.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(10)) {
            self.log.push(l);
        }
        self.log.clone()
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("meridian did not exit");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // Only this test's own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_sigterm_stops() {
    let dir = TempDir::new();
    dir.write("z.zone", &format!("{ZONE}api A 192.0.2.10\n"));
    dir.write(
        "meridian.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let mut srv = Served::start(dir.path(), "meridian.toml");
    let addr = srv.addr();
    let q = bytes(&query("api.example.test.", "A", None));
    let ask = || async { render(&udp_exchange(addr, &q).await.expect("an answer")) };
    assert!(ask().await.ends_with("A 192.0.2.10"));

    dir.write("z.zone", &format!("{ZONE}api A 192.0.2.20\n"));
    srv.signal("-HUP");
    srv.wait_log("configuration reloaded");
    assert!(ask().await.ends_with("A 192.0.2.20"));

    // A broken zone on SIGHUP: every diagnostic logged, old data still served.
    dir.write("z.zone", &format!("{ZONE}api A 192.0.2.20\napi CNAME x\n"));
    srv.signal("-HUP");
    srv.wait_log("z.zone:6:1: api.example.test. has a CNAME and other data");
    srv.wait_log("reload failed; still serving the previous configuration");
    assert!(ask().await.ends_with("A 192.0.2.20"));

    srv.signal("-TERM");
    assert_eq!(srv.wait_exit(), Some(0));
}

#[test]
fn bind_failure_exits_2() {
    // Hold the port without SO_REUSEPORT, so Meridian cannot share it.
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let dir = TempDir::new();
    dir.write("z.zone", ZONE);
    dir.write(
        "meridian.toml",
        &format!("[server]\nlisten = [\"127.0.0.1:{port}\"]\n[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n"),
    );
    let out = run(dir.path(), &["serve"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on udp 127.0.0.1:{port}: Address already in use")),
        "{stderr}"
    );
}

/// The container image's configuration as docker/rootfs.sh lays it out in /etc/meridian:
/// valid, on every interface, and refused without the admin token it asks for.
#[test]
fn check_accepts_the_container_config() {
    let dir = TempDir::new();
    let rootfs = crate::container::rootfs(&dir);
    let etc = rootfs.join("etc/meridian");
    let check = |token: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_meridian"));
        c.current_dir(&etc).args(["check"]).env_remove("MERIDIAN_ADMIN_TOKEN");
        if let Some(t) = token {
            c.env("MERIDIAN_ADMIN_TOKEN", t);
        }
        c.output().unwrap()
    };
    let out = check(Some("0123456789abcdef0123"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen 0.0.0.0:5353"), "{text}");
    let out = check(None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("environment variable MERIDIAN_ADMIN_TOKEN is not set"), "{err}");
}

#[test]
fn explain_shows_the_decision() {
    let out = run(&repo(), &["explain", "geo.app.example.com", "--client", "203.0.113.7/24"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for want in [
        "query: geo.app.example.com. A from 203.0.113.0/24 (EDNS Client Subnet)",
        "client: 203.0.113.0/24 from EDNS Client Subnet",
        "zone app.example.com.",
        "profile geo.app.example.com. (geographic, ttl 60)",
        "endpoint europe: available (status Unmonitored)",
        "GeoIP: country AU, subdivision AU-NSW, group GEO-AP",
        "geographic: region WORLD is mapped to global",
        "answer: NOERROR, authoritative, ECS scope /24",
        "answer: geo.app.example.com. 60 IN A 127.0.0.23",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The random draw of a weighted choice is shown and reproducible with --seed.
    let args = ["explain", "canary.app.example.com", "--client", "127.0.0.1", "--seed", "7"];
    let a = String::from_utf8(run(&repo(), &args).stdout).unwrap();
    assert!(a.contains("weighted: draw ") && a.contains("of total weight 10 picks"), "{a}");
    assert_eq!(a, String::from_utf8(run(&repo(), &args).stdout).unwrap());
    // A bad client is a clear error.
    let out = run(&repo(), &["explain", "www.app.example.com", "--client", "300.1.1.1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid client \"300.1.1.1\""));
}

#[test]
fn geoip_build_writes_a_database_readers_understand() {
    let dir = TempDir::new();
    dir.write("nets.csv", GEO_CSV);
    let out = run(dir.path(), &["geoip", "build", "nets.csv", "-o", "nets.mmdb"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nets.mmdb: 5 networks, "));
    // libmaxminddb's mmdblookup, an independent reader.
    let look = |ip: &str, path: &[&str]| {
        let o = Command::new("mmdblookup")
            .args(["--file", "nets.mmdb", "--ip", ip])
            .args(path)
            .current_dir(dir.path())
            .output()
            .expect("mmdblookup is installed (the test command installs mmdb-bin)");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    assert_eq!(look("10.2.3.4", &["country", "iso_code"]), "\"US\" <utf8_string>");
    assert_eq!(look("10.2.3.4", &["subdivisions", "0", "iso_code"]), "\"WA\" <utf8_string>");
    assert_eq!(look("2001:db8:4::1", &["continent", "code"]), "\"EU\" <utf8_string>");
    assert!(look("10.3.0.1", &["location", "latitude"]).starts_with("29.76"));
    // Errors name the CSV line.
    dir.write(
        "bad.csv",
        "cidr,country,continent,subdivision,lat,lon\n10.0.0.0/8,DE,,,,\n10.0.0.1/8,DE,,,,\n",
    );
    let out = run(dir.path(), &["geoip", "build", "bad.csv", "-o", "bad.mmdb"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("error: bad.csv:3:1: 10.0.0.1/8 has host bits set")
    );
    assert!(!dir.path().join("bad.mmdb").exists());
}

/// The shipped demo database is exactly what its CSV builds (with the same build time).
#[test]
fn shipped_demo_database_matches_its_csv() {
    let shipped = std::fs::read(repo().join("geoip/demo.mmdb")).unwrap();
    let epoch = maxminddb::Reader::from_source(shipped.clone()).unwrap().metadata().build_epoch;
    let rows = meridian::traffic::geo::mmdb::parse_csv(
        &std::fs::read_to_string(repo().join("geoip/demo.csv")).unwrap(),
    )
    .unwrap();
    let built = meridian::traffic::geo::mmdb::build(&rows, "Meridian-GeoIP", epoch);
    assert!(
        built == shipped,
        "geoip/demo.mmdb is stale: run `meridian geoip build geoip/demo.csv -o geoip/demo.mmdb`"
    );
}

#[test]
fn profile_names_must_not_clash_with_zone_data() {
    let dir = TempDir::new();
    dir.write("z.zone", &format!("{ZONE}www A 192.0.2.1\nsub NS ns.sub\nns.sub A 192.0.2.2\n"));
    let profile = |name: &str| {
        format!(
            "[[profile]]\nname = \"{name}\"\nmethod = \"priority\"\n[[profile.endpoint]]\nname = \"e\"\naddress = \"192.0.2.9\"\n"
        )
    };
    dir.write(
        "meridian.toml",
        &format!(
            "[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n{}{}{}",
            profile("www"),
            profile("x.sub"),
            profile("example.test.")
        ),
    );
    let out = run(dir.path(), &["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("meridian.toml:5:8: www.example.test. is a profile but also has records in the zone file (A)"), "{err}");
    assert!(err.contains("meridian.toml:11:8: x.sub.example.test. is at or below the delegation point sub.example.test."), "{err}");
    assert!(err.contains("meridian.toml:17:8: profile example.test. is a zone apex"), "{err}");
}

/// `meridian simulate` on the shipped scenario: the whole lifecycle in virtual time, each
/// webhook once, and a chart.
#[test]
fn simulate_replays_the_shipped_scenario() {
    let dir = TempDir::new();
    let svg = dir.path().join("burst.svg");
    let out =
        run(&repo(), &["simulate", "examples/burst-scenario.toml", "--svg", svg.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let transitions: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" -> "))
        .map(|l| l.split_once("  ").unwrap().1)
        .collect();
    assert_eq!(
        transitions,
        ["Idle -> Warming", "Warming -> Bursting", "Bursting -> Draining", "Draining -> Idle"],
        "{text}"
    );
    assert_eq!(text.matches("webhook on_warm").count(), 1);
    assert_eq!(text.matches("webhook on_idle").count(), 1);
    // While bursting at 90 requests/s the public cloud carries a large share and the
    // on-premises app stays near its target (0.7 of 50 requests/s).
    let row =
        text.lines().find(|l| l.trim_start().starts_with("0:13:2")).expect("a row at 13 minutes");
    let azure_pct: f64 =
        row.split_whitespace().nth(5).unwrap().trim_end_matches('%').parse().unwrap();
    assert!((40.0..85.0).contains(&azure_pct), "{row}");
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
    assert_eq!(chart.matches("<polyline").count(), 5, "demand, two endpoints, utilisation, share");
    // Thresholds, round time ticks, the outage and the webhooks are marked.
    for want in [
        ">target 70 %</text>",
        ">burst_at 80 %</text>",
        ">release_at 40 %</text>",
        ">5:00</text>",
        ">40:00</text>",
        ">stack-hub Degraded</text>",
        ">on_warm</text>",
        ">on_idle</text>",
    ] {
        assert!(chart.contains(want), "missing {want} in the chart");
    }
    // The simulation is deterministic.
    let again = run(&repo(), &["simulate", "examples/burst-scenario.toml"]);
    let table = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("chart written"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(table(&text), table(&String::from_utf8_lossy(&again.stdout)));
}

#[test]
fn json_logs() {
    let dir = TempDir::new();
    dir.write("z.zone", ZONE);
    dir.write(
        "meridian.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n[admin]\nenabled = false\n",
    );
    let mut srv = Served::start_with(dir.path(), "meridian.toml", &["--log-format", "json"]);
    let line = srv.wait_log("serving DNS over UDP and TCP");
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["target"], "meridian::app");
    assert!(v["fields"]["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    srv.signal("-TERM");
    assert_eq!(srv.wait_exit(), Some(0));
}

#[test]
fn sampled_query_log() {
    let dir = TempDir::new();
    dir.write("z.zone", &format!("{ZONE}api A 192.0.2.10\n"));
    dir.write(
        "meridian.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nquery_log = 1.0\n[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n[admin]\nenabled = false\n",
    );
    let mut srv = Served::start(dir.path(), "meridian.toml");
    let addr = srv.addr();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(udp_exchange(addr, &bytes(&query("api.example.test.", "A", None))))
        .expect("an answer");
    let line = srv.wait_log("meridian::query");
    for want in [
        "client=127.0.0.1",
        "name=api.example.test.",
        "qtype=A",
        "transport=\"udp\"",
        "rcode=\"NOERROR\"",
        "answers=A 192.0.2.10",
    ] {
        assert!(line.contains(want), "missing {want:?} in {line}");
    }
    // TCP queries are logged too.
    rt.block_on(tcp_exchange(addr, &bytes(&query("nope.example.test.", "A", None))))
        .expect("an answer");
    let line = srv.wait_log("transport=\"tcp\"");
    for want in ["name=nope.example.test.", "rcode=\"NXDOMAIN\"", "client=127.0.0.1"] {
        assert!(line.contains(want), "missing {want:?} in {line}");
    }
    srv.signal("-TERM");
    assert_eq!(srv.wait_exit(), Some(0));
}

/// `query_log = 0.25` logs about a quarter of the queries, over UDP and TCP alike.
#[test]
fn query_log_is_sampled() {
    let dir = TempDir::new();
    dir.write("z.zone", &format!("{ZONE}api A 192.0.2.10\n"));
    dir.write(
        "meridian.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nquery_log = 0.25\n[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n[admin]\nenabled = false\n",
    );
    let mut srv = Served::start(dir.path(), "meridian.toml");
    let addr = srv.addr();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let q = bytes(&query("api.example.test.", "A", None));
    for _ in 0..400 {
        rt.block_on(udp_exchange(addr, &q)).expect("an answer");
    }
    for _ in 0..200 {
        rt.block_on(tcp_exchange(addr, &q)).expect("an answer");
    }
    let log = srv.stop_and_collect();
    let count =
        |t: &str| log.iter().filter(|l| l.contains("meridian::query") && l.contains(t)).count();
    // Binomial(400, 0.25): mean 100, sd 8.7; (200, 0.25): mean 50, sd 6.1. Five sd either
    // side: a wrong rate (0, 1, or another fraction) fails, chance essentially never does.
    let (udp, tcp) = (count("transport=\"udp\""), count("transport=\"tcp\""));
    assert!((57..=143).contains(&udp), "{udp} of 400 UDP queries logged");
    assert!((20..=80).contains(&tcp), "{tcp} of 200 TCP queries logged");
}

/// `meridian import azure FILE`: the TOML written (parsed), and the warnings.
fn import(file: &str) -> (String, toml::Table, String) {
    let out = run(&repo(), &["import", "azure", file]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let table = text.parse::<toml::Table>().unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, table, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every imported profile, compared whole with what it must be: its settings (the endpoint
/// list aside) and each endpoint's table. `want` is TOML: one `[name]` table of
/// settings per profile, and one `[name.endpoint-name]` table per endpoint.
fn assert_imported(table: &toml::Table, want: &str) {
    let want = want.parse::<toml::Table>().unwrap();
    let profiles = table["profile"].as_array().unwrap();
    // (`toml::Table` keeps keys sorted: profiles and endpoints are compared by name.)
    let mut names: Vec<&str> = profiles.iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort();
    let wanted: Vec<&str> = want.keys().map(String::as_str).collect();
    assert_eq!(names, wanted, "profiles imported");
    for p in profiles {
        let name = p["name"].as_str().unwrap();
        let mut want_settings = want[name].as_table().unwrap().clone();
        let mut want_endpoints = Vec::new();
        want_settings.retain(|k, v| match v.as_table() {
            Some(t) if k != "monitor" => {
                let mut t = t.clone();
                t.insert("name".into(), toml::Value::String(k.to_string()));
                want_endpoints.push(t);
                false
            }
            _ => true,
        });
        want_settings.insert("name".into(), name.into());
        let mut settings = p.as_table().unwrap().clone();
        let endpoints = settings.remove("endpoint").unwrap();
        assert_eq!(settings, want_settings, "profile {name}'s settings");
        let mut endpoints: Vec<toml::Table> =
            endpoints.as_array().unwrap().iter().map(|e| e.as_table().unwrap().clone()).collect();
        endpoints.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        assert_eq!(endpoints, want_endpoints, "profile {name}'s endpoints");
    }
}

/// Loads imported TOML beside a zone and the demo GeoIP database with `check`, and returns
/// its summary lines for the profiles.
fn check_imported(toml: &str) -> Vec<String> {
    let dir = TempDir::new();
    dir.write("z.zone", ZONE);
    let geo = repo().join("geoip/demo.mmdb");
    dir.write(
        "meridian.toml",
        &format!("[geoip]\ndatabase = \"{}\"\n[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n{toml}", geo.display()),
    );
    let out = run(dir.path(), &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{toml}", String::from_utf8_lossy(&out.stderr));
    stdout.lines().filter(|l| l.starts_with("  profile ")).map(|l| l.trim().to_string()).collect()
}

/// An exported Azure Traffic Manager configuration (a list, as `az ... list` prints it, with
/// settings nested under `properties` or flattened) becomes a Meridian configuration that
/// loads as it is, and what could not come along is said.
#[test]
fn import_azure_profiles() {
    let (toml, table, warnings) = import("tests/data/azure-profiles.json");
    assert!(warnings.contains("not carried over: www/vm-by-id: no target"), "{warnings}");
    assert!(warnings.contains("Traffic View"), "{warnings}");
    assert!(
        !warnings.contains("eu.geo\" is not in this file"),
        "the child profile is in the file: {warnings}"
    );
    assert_imported(
        &table,
        r#"
        [www]
        method = "priority"
        ttl = 30
        monitor = { protocol = "https", port = 443, path = "/health", interval = "10s", timeout = "5s", tolerated_failures = 2, expected_status = ["200-299", "301-302"], headers = { "Host" = "www.contoso.com" } }
        [www.stack-hub]
        address = "203.0.113.10"
        priority = 1
        [www.azure-app]
        cname = "contoso-web.azurewebsites.net"
        priority = 2
        monitor = { headers = { "Host" = "contoso-web.azurewebsites.net" } }
        [www.legacy]
        address = "198.51.100.9"
        enabled = false
        priority = 3
        monitor = false
        [geo]
        method = "geographic"
        ttl = 60
        monitor = { protocol = "tcp", port = 443, interval = "30s", timeout = "10s", tolerated_failures = 3 }
        [geo.europe]
        profile = "eu.geo"
        min_child_endpoints = 2
        geo = ["GEO-EU", "GEO-ME"]
        [geo.rest]
        address = "192.0.2.50"
        geo = ["WORLD"]
        ["eu.geo"]
        method = "performance"
        ttl = 60
        ["eu.geo".amsterdam]
        address = "192.0.2.60"
        weight = 5
        location = "westeurope"
        ["eu.geo".dublin]
        address = "192.0.2.61"
        location = "northeurope"
        [intranet]
        method = "subnet"
        ttl = 300
        [intranet.hq]
        address = "10.1.0.10"
        subnets = ["10.1.0.0/16", "172.16.0.1/32", "172.16.0.2/31", "172.16.0.4/31", "172.16.0.6/32"]
        [intranet.internet]
        address = "192.0.2.70"
        "#,
    );
    // The endpoint Azure knows only by resource id is written commented out, for the operator.
    assert!(toml.contains("# name = \"vm-by-id\""), "{toml}");
    assert_eq!(
        check_imported(&toml),
        [
            "profile www.example.test.: priority, 3 endpoints",
            "profile geo.example.test.: geographic, 2 endpoints",
            "profile eu.geo.example.test.: performance, 2 endpoints",
            "profile intranet.example.test.: subnet, 2 endpoints",
        ]
    );
    // Not a Traffic Manager export: a clear error.
    let dir = TempDir::new();
    dir.write("other.json", "{\"resources\": []}");
    let out = run(dir.path(), &["import", "azure", "other.json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Traffic Manager profile"));
}

/// An ARM template (`resources`, other resource types among them, names as expressions, a
/// nested endpoint naming its child with `resourceId(...)`) with Weighted and MultiValue
/// profiles; and one profile object as `az network traffic-manager profile show` prints it.
#[test]
fn import_azure_arm_template_and_single_profile() {
    let (toml, table, warnings) = import("tests/data/azure-arm.json");
    assert_eq!(warnings, "", "nothing left behind");
    assert_imported(
        &table,
        r#"
        [canary]
        method = "weighted"
        ttl = 20
        monitor = { protocol = "http", port = 8080, path = "/ready", interval = "30s", timeout = "10s", tolerated_failures = 1 }
        [canary.stable]
        address = "192.0.2.80"
        weight = 90
        [canary.next]
        address = "192.0.2.81"
        weight = 10
        [api]
        method = "multivalue"
        ttl = 10
        max_answers = 3
        monitor = { protocol = "tcp", port = 443, interval = "10s", timeout = "5s", tolerated_failures = 0 }
        [api.a1]
        address = "192.0.2.90"
        [api.a2]
        address = "192.0.2.91"
        [api.a3]
        address = "2001:db8::92"
        [api.a4]
        address = "192.0.2.93"
        enabled = false
        [front]
        method = "priority"
        ttl = 45
        [front.api-pool]
        profile = "api"
        min_child_endpoints = 2
        min_child_ipv4 = 2
        min_child_ipv6 = 1
        priority = 1
        [front.sorry]
        cname = "sorry.contoso.example"
        priority = 2
        "#,
    );
    assert_eq!(
        check_imported(&toml),
        [
            "profile canary.example.test.: weighted, 2 endpoints",
            "profile api.example.test.: multivalue, 4 endpoints",
            "profile front.example.test.: priority, 2 endpoints",
        ]
    );

    let (toml, table, warnings) = import("tests/data/azure-single.json");
    assert_eq!(warnings, "");
    assert_imported(
        &table,
        r#"
        [solo]
        method = "priority"
        ttl = 120
        monitor = { protocol = "https", port = 8443, path = "/status", interval = "30s", timeout = "8s", tolerated_failures = 4 }
        [solo.primary]
        address = "198.51.100.20"
        priority = 1
        [solo.dr]
        address = "198.51.100.21"
        priority = 2
        "#,
    );
    assert_eq!(check_imported(&toml), ["profile solo.example.test.: priority, 2 endpoints"]);
}

/// `explain` for the methods whose decision depends on where the client is: what it looked
/// up, what it compared, what it chose — and the answer the server itself gives.
#[test]
fn explain_performance_subnet_multivalue_and_views() {
    let dir = TempDir::new();
    let cfg = write_config(&dir, "");
    let cfg = cfg.to_str().unwrap();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "perf.tm.test",
            "10.4.0.0/24",
            &[
                "GeoIP: country JP, group GEO-AS, location 35.68,139.77 (network /16)",
                "ams: 9292 km",
                "sea: 7694 km",
                "performance: nearest is sea",
                "answer: NOERROR, authoritative, ECS scope /16",
                "answer: perf.tm.test. 60 IN A 192.0.2.22",
            ],
        ),
        (
            "perf.tm.test",
            "127.0.0.1",
            &[
                "GeoIP: no record for 127.0.0.1",
                "performance: no location for the client; falling back to weights",
                "weighted: draw ",
            ],
        ),
        (
            "subnet.tm.test",
            "10.9.0.0/24",
            &[
                "subnet: 10.9.0.0 matches 10.0.0.0/8 of office",
                "answer: NOERROR, authoritative, ECS scope /8",
                "answer: subnet.tm.test. 60 IN A 192.0.2.31",
            ],
        ),
        (
            "subnet.tm.test",
            "192.0.2.1",
            &[
                "subnet: no rule matches 192.0.2.1",
                "subnet: using the fallback endpoint internet",
                "answer: subnet.tm.test. 60 IN A 192.0.2.32",
            ],
        ),
        (
            "multi.tm.test",
            "127.0.0.1",
            &["multivalue: 2 endpoint(s), starting at m", "answer: 2 record(s), TTL 60"],
        ),
        (
            "split.tm.test",
            "10.1.2.0/24",
            &[
                "split horizon: client is in view internal",
                "answer: NOERROR, authoritative, ECS scope /8",
                "answer: split.tm.test. 60 IN A 10.80.0.1",
            ],
        ),
        (
            "split.tm.test",
            "198.51.100.0/24",
            &[
                "split horizon: client is in no view; public answers",
                "answer: split.tm.test. 60 IN A 192.0.2.80",
            ],
        ),
    ];
    for (name, client, wants) in cases {
        let out = run(dir.path(), &["explain", name, "--client", client, "-c", cfg, "--seed", "3"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for want in *wants {
            assert!(text.contains(want), "{name} from {client}: missing {want:?} in:\n{text}");
        }
    }
    // Multivalue's rotation: over seeds, each endpoint starts the answer at some point.
    let starts: std::collections::BTreeSet<String> = (0..12)
        .map(|seed| {
            let seed = seed.to_string();
            let args =
                ["explain", "multi.tm.test", "--client", "127.0.0.1", "-c", cfg, "--seed", &seed];
            let text = String::from_utf8(run(dir.path(), &args).stdout).unwrap();
            let line = text.lines().find(|l| l.contains("starting at")).unwrap().to_string();
            line.rsplit(' ').next().unwrap().to_string()
        })
        .collect();
    assert_eq!(starts.into_iter().collect::<Vec<_>>(), ["m1", "m2", "m3"]);
}

/// The admin token from an environment variable (`token_env`), and a drain on SIGTERM:
/// `/readyz` turns 503 while DNS and the API go on serving; a second signal stops at once.
#[test]
fn token_env_and_drain_on_sigterm() {
    let dir = TempDir::new();
    dir.write("z.zone", &format!("{ZONE}api A 192.0.2.10\n"));
    let config = "[server]\nlisten = [\"127.0.0.1:0\"]\ndrain = \"60s\"\n[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n\
                  [admin]\nlisten = \"127.0.0.1:0\"\ntoken_env = \"MERIDIAN_TEST_TOKEN\"\n";
    dir.write("meridian.toml", config);
    // Unset, the variable is a clear configuration error.
    let out = meridian()
        .args(["check", "-c", "meridian.toml"])
        .current_dir(dir.path())
        .env_remove("MERIDIAN_TEST_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("environment variable MERIDIAN_TEST_TOKEN is not set"), "{stderr}");

    let token = "0123456789abcdef-from-the-environment";
    let mut srv =
        Served::start_env(dir.path(), "meridian.toml", &[], &[("MERIDIAN_TEST_TOKEN", token)]);
    let dns = srv.addr();
    let api = srv.admin_addr();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let get = |path: &str, token: Option<&str>| {
        rt.block_on(crate::admin::http(api, "GET", path, token, None)).0
    };
    assert_eq!(get("/v1/status", Some(token)), 200);
    assert_eq!(get("/v1/status", None), 401);
    assert_eq!(get("/v1/status", Some("0123456789abcdef-wrong")), 401);
    assert_eq!(get("/readyz", None), 200);

    srv.signal("-TERM");
    srv.wait_log("draining: /readyz answers 503");
    let until = Instant::now() + Duration::from_secs(10);
    while get("/readyz", None) != 503 {
        assert!(Instant::now() < until, "/readyz still ready after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still serving while draining: DNS and the API.
    let q = bytes(&query("api.example.test.", "A", None));
    let a = rt.block_on(udp_exchange(dns, &q)).expect("an answer while draining");
    assert_eq!(render(&a), "NOERROR aa\nan: api.example.test. 60 A 192.0.2.10");
    assert_eq!(get("/v1/status", Some(token)), 200);
    // The drain is 60 s; a second signal ends it now (wait_exit gives up after 20 s).
    srv.signal("-TERM");
    assert_eq!(srv.wait_exit(), Some(0));
    srv.wait_log("second signal; stopping now");
}

/// The admin API under a connection flood: 2000 connections that send half a request and
/// wait. At most 256 are served at once (the rest are closed at once), no memory is set
/// aside before a request needs it, and the server answers again once the flood is gone.
/// Also: the `Bearer` scheme in any letter case.
#[test]
fn admin_api_survives_a_connection_flood() {
    use std::io::{Read, Write};
    let dir = TempDir::new();
    dir.write("z.zone", ZONE);
    let token = "0123456789abcdef-flood-test";
    dir.write(
        "meridian.toml",
        &format!("[server]\nlisten = [\"127.0.0.1:0\"]\n[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n"),
    );
    let mut srv = Served::start(dir.path(), "meridian.toml");
    let _ = srv.addr();
    let api = srv.admin_addr();
    let rss = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kb = s.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap();
        kb.trim().trim_end_matches("kB").trim().parse().unwrap()
    };
    let get = |auth: &str| -> String {
        let mut s = std::net::TcpStream::connect(api).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET /v1/status HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.lines().next().unwrap_or("").to_string()
    };
    assert_eq!(get(&format!("Authorization: bearer {token}\r\n")), "HTTP/1.1 200 OK");
    assert_eq!(get(&format!("Authorization: BEARER {token}\r\n")), "HTTP/1.1 200 OK");
    assert_eq!(get(""), "HTTP/1.1 401 Unauthorized");
    let pid = srv.child.id();
    let before = rss(pid);
    let mut flood = Vec::new();
    for _ in 0..2000 {
        let Ok(mut s) = std::net::TcpStream::connect(api) else { continue };
        let _ = s.write_all(b"PUT /v1/profiles/x/endpoints/y HTTP/1.1\r\nHost: x\r\n");
        flood.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let during = rss(pid);
    // The connections past the limit were closed by the server: reading them ends at once.
    let mut closed = 0;
    for s in flood.iter_mut() {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        // Closed with our unread half-request in its buffer, the kernel resets instead.
        match s.read(&mut [0u8; 16]) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert!(closed >= 2000 - 256 - 10, "{closed} of 2000 flood connections closed at once");
    // Before: an 80 KiB zeroed buffer per connection (15,000 took 493 MB). Now a few KiB each
    // for at most 256 connections.
    let grown = during.saturating_sub(before);
    assert!(grown < 16 * 1024, "RSS grew by {grown} kB under the flood");
    drop(flood);
    // Once the flood is gone the API answers again at once.
    let deadline = Instant::now() + Duration::from_secs(15);
    while get(&format!("Authorization: Bearer {token}\r\n")) != "HTTP/1.1 200 OK" {
        assert!(Instant::now() < deadline, "the API did not come back after the flood");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "admin flood: RSS {before} kB before, {during} kB under 2000 connections, {closed} closed at once"
    );
    srv.signal("-TERM");
    assert_eq!(srv.wait_exit(), Some(0));
}

/// The operator's CLI against a running server: `status` (table and JSON), `endpoint
/// disable|enable`, `load push`, `reload`; the address and token from the environment; clear
/// errors when the server refuses or cannot be reached.
#[test]
fn operator_cli_over_the_admin_api() {
    let dir = TempDir::new();
    let cfg = write_config(&dir, "");
    let token = "0123456789abcdef-operator-cli";
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replacen("[admin]\n", &format!("[admin]\ntoken = \"{token}\"\n"), 1))
        .unwrap();
    let mut srv = Served::start(dir.path(), "meridian.toml");
    let _ = srv.addr();
    let api = srv.admin_addr();
    let ctl = |args: &[&str], token: Option<&str>| {
        let mut c = meridian();
        c.args(args).current_dir(dir.path()).env("MERIDIAN_ADMIN", format!("http://{api}"));
        match token {
            Some(t) => c.env("MERIDIAN_ADMIN_TOKEN", t),
            None => c.env_remove("MERIDIAN_ADMIN_TOKEN"),
        };
        let out = c.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, table, err) = ctl(&["status"], Some(token));
    assert_eq!(code, Some(0), "{err}");
    assert!(table.contains("\nprio.tm.test. (priority, ttl 30, "), "{table}");
    assert!(
        table.contains("burst.tm.test. (priority, ttl 60, ")
            && table.contains(" · burst Idle share 0 %"),
        "{table}"
    );
    assert!(
        table.lines().any(|l| l.trim_start().starts_with("a ") && l.contains("Unmonitored")),
        "{table}"
    );
    let (code, json, _) = ctl(&["status", "--json"], Some(token));
    assert_eq!(code, Some(0));
    assert!(serde_json::from_str::<serde_json::Value>(&json).unwrap()["profiles"].is_array());

    let (code, out, err) = ctl(
        &["endpoint", "disable", "prio.tm.test", "a", "--for", "10m", "--reason", "patching"],
        Some(token),
    );
    assert_eq!((code, out.as_str()), (Some(0), "prio.tm.test/a: Disabled\n"), "{err}");
    let (_, table, _) = ctl(&["status"], Some(token));
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("a ") && l.contains("Disabled"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("disabled for 600s: patching") || row.contains("disabled for 599s: patching"),
        "{row}"
    );
    let (code, _, err) = ctl(&["endpoint", "enable", "prio.tm.test", "a"], Some(token));
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = ctl(&["load", "push", "burst.tm.test", "onprem", "42"], Some(token));
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "burst.tm.test/onprem: load 42 recorded\n"),
        "{err}"
    );
    let (code, out, _) = ctl(&["reload"], Some(token));
    assert_eq!((code, out.as_str()), (Some(0), "reloaded\n"));
    // Refusals and mistakes say what is wrong.
    let (code, _, err) = ctl(&["endpoint", "disable", "prio.tm.test", "nope"], Some(token));
    assert_eq!(code, Some(1));
    assert!(err.contains("the server answered 404"), "{err}");
    let (code, _, err) = ctl(&["status"], None);
    assert_eq!(code, Some(2));
    assert!(err.contains("a token is needed or it is wrong (set MERIDIAN_ADMIN_TOKEN"), "{err}");
    srv.signal("-TERM");
    assert_eq!(srv.wait_exit(), Some(0));
    let (code, _, err) = ctl(&["status"], Some(token));
    assert_eq!(code, Some(2));
    assert!(err.contains(&format!("cannot reach the admin API at http://{api}")), "{err}");
}

/// The systemd unit verifies with `systemd-analyze verify` (its ExecStart pointed at the
/// binary under test), and the admin token can come from a file, as its credential does.
#[test]
fn systemd_unit_verifies_and_token_file_works() {
    let dir = TempDir::new();
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/meridian.service")).unwrap();
    let unit = unit.replace("/usr/local/bin/meridian", env!("CARGO_BIN_EXE_meridian"));
    dir.write("meridian.service", &unit);
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("meridian.service"))
        .output()
        .expect("systemd-analyze is installed (the test command installs systemd)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(want), "the unit lacks {want}");
    }
    // token_file: off loopback the admin API needs a token; a file holds it.
    dir.write("z.zone", ZONE);
    dir.write("admin-token", "0123456789abcdef-from-a-file\n");
    let cfg = "[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n[admin]\nlisten = \"0.0.0.0:8053\"\ntoken_file = \"admin-token\"\n";
    dir.write("meridian.toml", cfg);
    let out = run(dir.path(), &["check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir.write("meridian.toml", &cfg.replace("admin-token", "missing-token"));
    let out = run(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("admin token_file: cannot read"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Kubernetes manifests parse as YAML (six objects: ConfigMap, Deployment, two Services,
/// PodDisruptionBudget, ServiceMonitor), validate strictly against Kubernetes' own schemas
/// (kubernetes-validate, offline; the ServiceMonitor is a CRD it has no schema for, so its
/// references are checked here), and the configuration their ConfigMap carries passes
/// `meridian check` (with its token file where the Secret would be mounted).
#[test]
fn kubernetes_manifests_parse_and_their_config_checks() {
    let dir = TempDir::new();
    let out = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/data/kubernetes-check.py"))
        .arg(repo().join("deploy/kubernetes/meridian.yaml"))
        .arg(dir.path())
        .output()
        .expect("Debian's python3 (with python3-yaml, which the test command installs)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ConfigMap Deployment Service Service PodDisruptionBudget ServiceMonitor"
    );
    // Kubernetes' schemas, strict (unknown fields rejected): the oldest and newest supported.
    let validate = std::env::var("MERIDIAN_KUBERNETES_VALIDATE")
        .unwrap_or_else(|_| "kubernetes-validate".into());
    for version in ["1.29.0", "1.37.0"] {
        let out = Command::new(&validate)
            .args(["--strict", "-k", version])
            .arg(repo().join("deploy/kubernetes/meridian.yaml"))
            .output()
            .expect("kubernetes-validate is installed (the test command installs it)");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "against {version}: {text}");
        assert_eq!(text.matches(" passed for resource ").count(), 5, "{text}");
    }
    let cfg = std::fs::read_to_string(dir.path().join("meridian.toml")).unwrap();
    dir.write("meridian.toml", &cfg.replace("/run/secrets/meridian/token", "token"));
    dir.write("token", "0123456789abcdef-kubernetes-secret\n");
    let out = run(dir.path(), &["check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("listen 0.0.0.0:5353"));
}

/// `meridian completions bash` is a script bash accepts and that completes subcommands and
/// flags; `meridian man --dir` writes a page for every command the main page refers to.
#[test]
fn completions_and_manual_pages() {
    let dir = TempDir::new();
    let out = run(dir.path(), &["completions", "bash"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let script = dir.write("meridian.bash", &String::from_utf8_lossy(&out.stdout));
    // Complete "meridian st" and "meridian endpoint disable --r" the way bash would.
    let complete = |words: &str, cword: usize| {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _meridian meridian \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let o = Command::new("bash").args(["-c", &program]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).lines().map(String::from).collect::<Vec<_>>()
    };
    let got = complete("meridian st", 1);
    assert_eq!(got, ["status"], "{got:?}");
    let got = complete("meridian endpoint disable --r", 3);
    assert!(got.contains(&"--reason".to_string()), "{got:?}");
    for shell in ["zsh", "fish"] {
        let out = run(dir.path(), &["completions", shell]);
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let out = run(dir.path(), &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "an unknown shell is a usage error");

    let man = dir.path().join("man1");
    std::fs::create_dir(&man).unwrap();
    let out = run(dir.path(), &["man", "--dir", man.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let main = std::fs::read_to_string(man.join("meridian.1")).unwrap();
    assert!(main.contains(".TH meridian 1"), "{main}");
    // Every page the main page points at exists.
    let mut referred = 0;
    for line in main.lines().filter(|l| l.starts_with("meridian\\-") && l.ends_with("(1)")) {
        let page = line.trim_end_matches("(1)").replace("\\-", "-");
        assert!(man.join(format!("{page}.1")).exists(), "{page}.1 is referred to but missing");
        referred += 1;
    }
    assert!(referred >= 10, "{referred} pages referred to:\n{main}");
    let status = std::fs::read_to_string(man.join("meridian-status.1")).unwrap();
    assert!(status.contains("\\-\\-json"), "{status}");
}
