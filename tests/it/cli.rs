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
    assert!(stdout.starts_with("meridian.toml: ok\n"), "{stdout}");
    assert!(stdout.contains("zone app.example.com.:"), "{stdout}");
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
        let mut child = meridian()
            .args(["serve", "-c", config])
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
        let line = self.wait_log("serving DNS");
        let addr = line.split("addr=").nth(1).and_then(|s| s.split_whitespace().next()).unwrap();
        addr.parse().unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
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
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n",
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

/// The container image's configuration, checked in the layout the Dockerfile gives it
/// (`/etc/meridian/meridian.toml` beside `/etc/meridian/zones/`).
#[test]
fn check_accepts_the_container_config() {
    let dir = TempDir::new();
    std::fs::copy(repo().join("docker/meridian.toml"), dir.path().join("meridian.toml")).unwrap();
    std::fs::create_dir(dir.path().join("zones")).unwrap();
    for entry in std::fs::read_dir(repo().join("zones")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join("zones").join(entry.file_name())).unwrap();
    }
    let out = run(dir.path(), &["check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
