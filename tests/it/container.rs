//! The container image (docker/): built offline from docker/rootfs.sh and docker/Containerfile
//! with Debian's buildah, then run with podman as an operator would: a read-only root, DNS and
//! the admin API published on loopback, the token from the environment or a mounted secret,
//! configuration from a mounted volume, a HEALTHCHECK on /readyz, SIGTERM to stop.
//!
//! podman runs containers here with two settings that this kind of machine needs (see
//! docker/README.md): `--runtime runc`, because crun refuses the host's hybrid cgroup layout
//! ("cgroups in hybrid mode not supported"), and explicit `--ulimit nofile/nproc` below the
//! host's limits, because podman's defaults for root ask for more than the host allows and the
//! runtime's setrlimit fails with EPERM.

use crate::harness::{TempDir, free_port, repo};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const TOKEN: &str = "container-test-token-0123456789";

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(["--runtime", "runc"])
        .args(args)
        .output()
        .expect("podman is installed (the test command installs podman, buildah and runc)")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Runs `podman run -d` with the settings every container here gets; the container's ID.
fn start(image: &str, extra: &[&str]) -> Result<String, String> {
    let mut args = vec![
        "run",
        "-d",
        "--read-only",
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
    ];
    args.extend_from_slice(extra);
    args.push(image);
    let o = podman(&args);
    if !o.status.success() {
        return Err(text(&o));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Removes the test's containers and image, whatever happened.
struct Cleanup {
    image: String,
    containers: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = podman(&["rm", "-f", "-t", "0", c]);
        }
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=2", "+short"])
        .args(args)
        .output()
        .expect("dig is installed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `GET /readyz` on the published admin port: the status code, 0 when nothing answers.
fn readyz(port: u16) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// Waits (at most 30 s) until the container's published /readyz says 200.
fn wait_ready(id: &str, admin: u16) {
    let until = Instant::now() + Duration::from_secs(30);
    while readyz(admin) != 200 {
        assert!(Instant::now() < until, "not ready after 30 s:\n{}", text(&podman(&["logs", id])));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The image's root filesystem, from docker/rootfs.sh and the binary under test.
pub fn rootfs(dir: &TempDir) -> std::path::PathBuf {
    let rootfs = dir.path().join("rootfs");
    let o = Command::new(repo().join("docker/rootfs.sh"))
        .arg(&rootfs)
        .arg(env!("CARGO_BIN_EXE_meridian"))
        .output()
        .unwrap();
    assert!(o.status.success(), "docker/rootfs.sh: {}", text(&o));
    rootfs
}

/// docker/Containerfile built over `rootfs` with buildah, as docker/build-image.sh does.
fn build(rootfs: &std::path::Path, image: &str) {
    let o = Command::new("buildah")
        .args(["bud", "--quiet", "--format", "docker", "--layers=false", "-f"])
        .arg(repo().join("docker/Containerfile"))
        .args(["-t", image])
        .arg(rootfs)
        .output()
        .expect("buildah is installed (the test command installs it)");
    assert!(o.status.success(), "buildah bud: {}", text(&o));
}

#[test]
fn image_builds_offline_and_serves_from_podman() {
    let dir = TempDir::new();
    let rootfs = rootfs(&dir);
    let image = format!("localhost/meridian-test:{}", std::process::id());
    let mut cleanup = Cleanup { image: image.clone(), containers: Vec::new() };
    build(&rootfs, &image);

    // What the image says about itself.
    let o = podman(&["image", "inspect", &image]);
    assert!(o.status.success(), "{}", text(&o));
    let inspect: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(inspect[0]["Healthcheck"]["Test"], serde_json::json!(["CMD", "meridian", "ready"]));
    for port in ["5353/udp", "5353/tcp", "8053/tcp"] {
        assert!(config["ExposedPorts"].get(port).is_some(), "{port} not exposed: {config}");
    }
    // Only the binary, its libraries, the user and the default configuration: no shell.
    assert!(!rootfs.join("bin/sh").exists() && !rootfs.join("usr/bin/sh").exists());

    // Can this machine run containers at all? If not, say exactly why and check the image's
    // filesystem from a chroot instead (as the unprivileged user the image runs as).
    let probe = podman(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=4096:4096",
        "--ulimit",
        "nproc=4096:4096",
        &image,
        "--version",
    ]);
    if !probe.status.success() {
        eprintln!(
            "podman cannot run containers here, so the image is checked by chroot: {}",
            text(&probe)
        );
        let o = Command::new("chroot")
            .args(["--userspec=65532:65532"])
            .arg(&rootfs)
            .args(["/usr/local/bin/meridian", "-c", "/etc/meridian/meridian.toml", "check"])
            .env("MERIDIAN_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(o.status.success(), "meridian check in the image's root: {}", text(&o));
        return;
    }
    assert!(text(&probe).contains("meridian "), "{}", text(&probe));

    // 1. The image's own configuration, the token from the environment.
    let (dns, admin) = (free_port(), free_port());
    let udp = format!("127.0.0.1:{dns}:5353/udp");
    let tcp = format!("127.0.0.1:{dns}:5353/tcp");
    let api = format!("127.0.0.1:{admin}:8053/tcp");
    let env = format!("MERIDIAN_ADMIN_TOKEN={TOKEN}");
    let id = start(&image, &["-e", &env, "-p", &udp, "-p", &tcp, "-p", &api]).unwrap();
    cleanup.containers.push(id.clone());
    wait_ready(&id, admin);
    assert_eq!(dig(dns, &["www.app.example.com"]), "192.0.2.10");
    assert_eq!(dig(dns, &["+tcp", "www.app.example.com"]), "192.0.2.10");
    let o = podman(&["healthcheck", "run", &id]);
    assert!(o.status.success(), "the HEALTHCHECK failed: {}", text(&o));
    // The operator CLI inside the container finds the admin API from the configuration.
    let o = podman(&["exec", "-e", &env, &id, "meridian", "status"]);
    assert!(text(&o).contains("www.app.example.com."), "{}", text(&o));
    // SIGTERM: drains (2 s in the image's configuration), then exits 0.
    let t = Instant::now();
    let o = podman(&["stop", "-t", "20", &id]);
    assert!(o.status.success(), "{}", text(&o));
    let took = t.elapsed();
    let o = podman(&["inspect", &id, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0", "exit code after SIGTERM");
    let logs = text(&podman(&["logs", &id]));
    assert!(logs.contains("SIGTERM received") && logs.contains("stopped"), "{logs}");
    eprintln!("podman stop took {took:?} (2 s of it is the configured drain)");

    // 2. Without a token the admin API on every interface is refused, with the reason.
    let id = start(&image, &[]).unwrap();
    cleanup.containers.push(id.clone());
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let o = podman(&["inspect", &id, "--format", "{{.State.Status}} {{.State.ExitCode}}"]);
        let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if state.starts_with("exited") {
            assert_eq!(state, "exited 1");
            break;
        }
        assert!(Instant::now() < until, "a tokenless container kept running: {state}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = text(&podman(&["logs", &id]));
    assert!(logs.contains("environment variable MERIDIAN_ADMIN_TOKEN is not set"), "{logs}");

    // 3. An operator's own configuration, zones and GeoIP from a mounted volume, the token from
    // a mounted secret file.
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(etc.join("zones")).unwrap();
    std::fs::create_dir_all(etc.join("geoip")).unwrap();
    std::fs::copy(repo().join("geoip/demo.mmdb"), etc.join("geoip/demo.mmdb")).unwrap();
    std::fs::write(
        etc.join("zones/ops.test.zone"),
        "$TTL 60\n@ SOA ns1 hostmaster 7 3600 600 86400 60\n@ NS ns1\nns1 A 192.0.2.1\nmounted A 192.0.2.77\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("meridian.toml"),
        "[server]\nlisten = [\"0.0.0.0:5353\"]\n[[zone]]\nname = \"ops.test.\"\nfile = \"zones/ops.test.zone\"\n[geoip]\ndatabase = \"geoip/demo.mmdb\"\n[admin]\nlisten = \"0.0.0.0:8053\"\ntoken_file = \"/run/secrets/meridian/token\"\n",
    )
    .unwrap();
    let secret = dir.write("token", &format!("{TOKEN}\n"));
    // The container's user reads both.
    for p in [&etc, &etc.join("zones"), &etc.join("geoip")] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    for p in [&secret, &etc.join("meridian.toml"), &etc.join("zones/ops.test.zone")] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    let (dns, admin) = (free_port(), free_port());
    let udp = format!("127.0.0.1:{dns}:5353/udp");
    let api = format!("127.0.0.1:{admin}:8053/tcp");
    let vol = format!("{}:/etc/meridian:ro", etc.display());
    let sec = format!("{}:/run/secrets/meridian/token:ro", secret.display());
    let id = start(&image, &["-v", &vol, "-v", &sec, "-p", &udp, "-p", &api]).unwrap();
    cleanup.containers.push(id.clone());
    wait_ready(&id, admin);
    assert_eq!(dig(dns, &["mounted.ops.test"]), "192.0.2.77");
    let o = podman(&["kill", "--signal", "TERM", &id]);
    assert!(o.status.success(), "{}", text(&o));
    let o = podman(&["wait", &id]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0", "{}", text(&o));
}

/// docker/Dockerfile (for Docker, with a build stage) makes the same image as
/// docker/Containerfile: their final stages agree line for line below the COPY.
#[test]
fn dockerfile_and_containerfile_agree() {
    let tail = |file: &str| {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let last = text.rfind("FROM scratch").unwrap_or_else(|| panic!("{file}: no FROM scratch"));
        let lines: Vec<String> = text[last..]
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        assert!(lines[1].starts_with("COPY "), "{file}: {}", lines[1]);
        lines[2..].to_vec()
    };
    let (a, b) = (tail("docker/Containerfile"), tail("docker/Dockerfile"));
    assert!(a.len() >= 8, "{a:?}");
    assert_eq!(a, b, "docker/Containerfile and docker/Dockerfile differ");
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target"), "target/ would be sent to Docker");
}

/// The compose demo (docker/compose/): the shipped compose file and configuration, both
/// images built here, podman-compose bringing up Meridian, the two apps, Prometheus and the
/// load generator on a shortened ramp. Meridian must burst while the ramp is high (its load read
/// from Prometheus) and come all the way back to Idle after it falls.
#[test]
fn compose_demo_bursts_and_returns() {
    let dir = TempDir::new();
    let rootfs = rootfs(&dir);
    let pid = std::process::id();
    let image = format!("localhost/meridian-compose-test:{pid}");
    let prom = format!("localhost/meridian-compose-test-prometheus:{pid}");
    let _img = Cleanup { image: image.clone(), containers: Vec::new() };
    let _prom = Cleanup { image: prom.clone(), containers: Vec::new() };
    build(&rootfs, &image);
    let o = Command::new(repo().join("docker/compose/build-prometheus-image.sh"))
        .arg(&prom)
        .output()
        .unwrap();
    assert!(o.status.success(), "build-prometheus-image.sh: {}", text(&o));

    let compose_bin =
        std::env::var("MERIDIAN_PODMAN_COMPOSE").unwrap_or_else(|_| "podman-compose".into());
    let project = format!("meridian-test-{pid}");
    let (dns, admin, prometheus) = (free_port(), free_port(), free_port());
    let compose = |args: &[&str]| {
        Command::new(&compose_bin)
            .args(["--podman-run-args=--runtime runc", "-p", &project, "-f"])
            .arg(repo().join("docker/compose/compose.yaml"))
            .args(args)
            .env("MERIDIAN_ADMIN_TOKEN", TOKEN)
            .env("MERIDIAN_IMAGE", &image)
            .env("PROMETHEUS_IMAGE", &prom)
            .env("DNS_PORT", dns.to_string())
            .env("ADMIN_PORT", admin.to_string())
            .env("PROMETHEUS_PORT", prometheus.to_string())
            // 10 → 100 requests/s for 30 s, then 10 until the end: a burst and its return.
            .env("RAMP", "0s:10,5s:10,10s:100,40s:100,45s:10,120s:10")
            .output()
            .expect("podman-compose (1.1 or newer) is installed; the test command installs it")
    };
    struct Down<'a>(&'a dyn Fn(&[&str]) -> Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-t", "2"]);
        }
    }
    let o = compose(&["up", "-d"]);
    let _down = Down(&compose);
    assert!(o.status.success(), "podman-compose up: {}", text(&o));

    // Before the ramp rises: every answer is on-premises.
    let until = Instant::now() + Duration::from_secs(30);
    while readyz(admin) != 200 {
        assert!(Instant::now() < until, "Meridian not ready: {}", text(&compose(&["logs"])));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dig(dns, &["www.app.example.com"]), "10.89.53.11");

    // The burst state every second, from the admin API, for at most 200 s.
    let status = || -> Option<(String, f64, Option<f64>)> {
        let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["--admin", &format!("http://127.0.0.1:{admin}"), "status", "--json"])
            .env("MERIDIAN_ADMIN_TOKEN", TOKEN)
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let p = &v["profiles"][0];
        Some((
            p["burst"]["state"].as_str()?.to_string(),
            p["burst"]["share"].as_f64()?,
            p["endpoints"][0]["load"]["utilisation"].as_f64(),
        ))
    };
    let start = Instant::now();
    let (mut max_share, mut max_util, mut burst_seen, mut back) = (0.0f64, 0.0f64, false, false);
    let mut states = Vec::new();
    while start.elapsed() < Duration::from_secs(200) {
        std::thread::sleep(Duration::from_secs(1));
        let Some((state, share, util)) = status() else { continue };
        max_share = max_share.max(share);
        max_util = max_util.max(util.unwrap_or(0.0));
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        burst_seen |= state == "Bursting" && share > 0.0;
        if burst_seen && state == "Idle" && share == 0.0 {
            back = true;
            break;
        }
    }
    let load_log = text(&compose(&["logs", "load"]));
    eprintln!(
        "compose demo: states {states:?}, max share {max_share:.2}, max utilisation {max_util:.2}, back to Idle after {:?}",
        start.elapsed()
    );
    assert!(max_util > 0.8, "Prometheus never reported the ramp: {max_util}\n{load_log}");
    assert!(burst_seen, "no burst: {states:?}\n{load_log}");
    assert!(back, "not back to Idle within 200 s: {states:?}\n{load_log}");
    assert!(load_log.contains("10.89.53.12"), "no request reached the public app:\n{load_log}");
    assert_eq!(dig(dns, &["www.app.example.com"]), "10.89.53.11");
}
