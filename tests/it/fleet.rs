//! A fleet that decides as one (`[profile.burst.fleet]`), with real parts: three Meridian
//! processes on 127.0.0.51–53, started at different times and one restarted mid-burst, one
//! real Prometheus scraping the two demo apps and the three instances, and the demo load
//! generator spreading a 10 → 100 → 10 requests/s ramp from 40 client prefixes over the three
//! instances, as resolvers spread theirs over a domain's name servers.
//!
//! At every aligned instant the instances must report the same burst state and share, and for
//! 20 client subnets (`dig +subnet`) give the same answers. When Prometheus goes away each
//! instance says it decides locally and holds where the fleet was.

use crate::burst::start_prometheus_with;
use crate::harness::TempDir;
use crate::harness::free_port;
use crate::harness::get_json as get;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A process of the binary under test, stopped by PID when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &TempDir, config: &str, args: &[&str], log: &str) -> Proc {
    let log = std::fs::File::create(dir.path().join(log)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("-c")
        .arg(dir.path().join(config))
        .args(args)
        .env_remove("MERIDIAN_LOG")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc(child)
}

/// An instance's decision: (instant, state, share, decided by). Without fleet mode (the
/// baseline measurement) the instant is the second it was read in.
fn decision(admin: &str) -> Option<(u64, String, f64, String)> {
    let v = get(admin, "/v1/status")?;
    let b = &v["profiles"][0]["burst"];
    let f = &b["fleet"];
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    Some((
        f["instant_unix"].as_f64().map_or(now, |t| t.round() as u64),
        b["state"].as_str()?.to_string(),
        b["share"].as_f64()?,
        // Until the fleet's health reports exist (the first seconds of a new fleet), health
        // in the replay is each instance's own view: not yet a fleet decision.
        match (f["decided_by"].as_str(), f["primary_up"].is_null() || f["overflow_up"].is_null()) {
            (Some("fleet"), true) => "fleet, own health".to_string(),
            (by, _) => by.unwrap_or("fleet").to_string(),
        },
    ))
}

/// The A answers of one instance for every subnet, with one dig.
fn answers(dns: &str, subnets: &[String]) -> Vec<String> {
    let (ip, port) = dns.split_once(':').unwrap();
    let mut args = vec![
        format!("@{ip}"),
        "-p".into(),
        port.into(),
        "+short".into(),
        "+tries=1".into(),
        "+time=1".into(),
    ];
    for s in subnets {
        args.push(format!("+subnet={s}"));
        args.push("www.fleet.test".into());
    }
    let out = Command::new("dig").args(&args).output().expect("dig is installed");
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

const ZONE: &str =
    "$TTL 60\n@ SOA ns1 hostmaster 1 3600 600 86400 60\n@ NS ns1\nns1 A 127.0.0.51\n";

/// `MERIDIAN_FLEET_BASELINE=1` runs the same fleet without `[profile.burst.fleet]` (each
/// instance deciding alone, as before fleet mode) and only prints the figures: the "before" of
/// the closing note. Without it the test asserts the fleet decides as one.
#[test]
fn three_instances_decide_as_one() {
    let baseline = std::env::var_os("MERIDIAN_FLEET_BASELINE").is_some();
    let dir = TempDir::new();
    dir.write("fleet.zone", ZONE);
    let (dns_port, admin_port, app_port) = (free_port(), free_port(), free_port());
    let admins: Vec<String> = (1..=3).map(|i| format!("127.0.0.5{i}:{admin_port}")).collect();
    let dnss: Vec<String> = (1..=3).map(|i| format!("127.0.0.5{i}:{dns_port}")).collect();
    let jobs = format!(
        "  - job_name: apps\n    static_configs:\n      - targets: ['127.0.0.61:{app_port}', '127.0.0.62:{app_port}']\n  - job_name: meridian\n    static_configs:\n      - targets: [{}]\n",
        admins.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
    );
    let prometheus = start_prometheus_with(&jobs);
    let config = |i: usize| {
        format!(
            r#"[server]
listen = ["127.0.0.5{i}:{dns_port}"]
udp_workers = 1
[[zone]]
name = "fleet.test."
file = "fleet.zone"
[admin]
listen = "127.0.0.5{i}:{admin_port}"
[fleet]
prometheus = "http://127.0.0.1:{prom}"
match = 'job="meridian"'
lag = "2s"
[[profile]]
name = "www"
method = "priority"
ttl = 2
[profile.monitor]
protocol = "http"
port = {app_port}
path = "/health"
interval = "1s"
timeout = "500ms"
tolerated_failures = 1
consensus = "prometheus"
[profile.burst]
primary = "on-premises"
overflow = "public-cloud"
warm_at = 0.6
burst_at = 0.8
release_at = 0.4
target = 0.7
sustain = "3s"
cooldown = "6s"
interval = "1s"
max_step = 0.2
max_share = 0.8
transition_ttl = 1
sticky = "client-subnet"
[profile.burst.fleet]
window = "60s"
lag = "2s"
match = 'job="meridian"'
[[profile.endpoint]]
name = "on-premises"
address = "127.0.0.61"
priority = 1
[profile.endpoint.load]
source = "prometheus"
url = "http://127.0.0.1:{prom}"
query = 'demo_requests_per_second{{job="apps",endpoint="on-premises"}}'
capacity = 50
interval = "1s"
half_life = "2s"
stale_after = "10s"
[[profile.endpoint]]
name = "public-cloud"
address = "127.0.0.62"
priority = 2
"#,
            prom = prometheus.port
        )
    };
    // Instance 2's probe path to the on-premises app is broken (it probes a closed port), while
    // the other two see it up: by consensus, it stays Online everywhere.
    let closed = free_port();
    for i in 1..=3 {
        let mut c = config(i);
        if i == 2 {
            let at = c.find("priority = 1\n").unwrap() + "priority = 1\n".len();
            c.insert_str(at, &format!("[profile.endpoint.monitor]\nport = {closed}\n"));
        }
        if baseline {
            let a = c.find("[profile.burst.fleet]").unwrap();
            let b = c.find("[[profile.endpoint]]").unwrap();
            c.replace_range(a..b, "");
        }
        dir.write(&format!("m{i}.toml"), &c);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("-c")
        .arg(dir.path().join("m1.toml"))
        .arg("check")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _apps = spawn(&dir, "m1.toml", &["demo-endpoints"], "apps.log");
    // Started at different times.
    let mut instances: Vec<Option<Proc>> = Vec::new();
    for i in 1..=3 {
        instances.push(Some(spawn(&dir, &format!("m{i}.toml"), &["serve"], &format!("m{i}.log"))));
        std::thread::sleep(Duration::from_millis(2300));
    }
    let until = Instant::now() + Duration::from_secs(30);
    while !admins.iter().all(|a| decision(a).is_some_and(|d| d.3 == "fleet")) {
        assert!(Instant::now() < until, "the instances never decided as the fleet");
        std::thread::sleep(Duration::from_millis(250));
    }
    // Instance 2's own probes find the on-premises app down; the fleet's say up.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let v = get(&admins[1], "/v1/status").unwrap_or_default();
        let e = &v["profiles"][0]["endpoints"][0];
        // (Until Prometheus has scraped instance 2's verdict, the fleet is the other two.)
        let f = e["consensus"]["fraction_up"].as_f64().unwrap_or(0.0);
        if e["verdict"] == "Degraded"
            && e["status"] == "Online"
            && e["consensus"]["up"] == true
            && (f - 2.0 / 3.0).abs() < 0.01
        {
            break;
        }
        assert!(Instant::now() < until, "instance 2 never followed the consensus: {e}");
        std::thread::sleep(Duration::from_millis(250));
    }
    // explain (the admin API's, on the live state) shows the consensus and the fleet view.
    let v = get(&admins[1], "/v1/explain?name=www.fleet.test&client=10.1.7.0/24").unwrap();
    let trace = v["trace"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string());
    let trace = trace.collect::<Vec<_>>().join("\n");
    for want in [
        "by the fleet's consensus: 67 % of instances see it up (this instance's own probes: Degraded)",
        "burst fleet: decided as one fleet every 1s at aligned instants",
        "decided by the fleet",
    ] {
        assert!(trace.contains(want), "{want:?} not in:\n{trace}");
    }
    let servers: Vec<String> =
        dnss.iter().flat_map(|d| ["--server".to_string(), d.clone()]).collect();
    let mut load_args = vec!["demo-load", "www.fleet.test", "--clients", "40", "--report", "10s"];
    let port = app_port.to_string();
    load_args.extend(["--port", &port, "--ramp", "0s:10,5s:10,10s:100,50s:100,55s:10,110s:10"]);
    load_args.extend(servers.iter().map(String::as_str));
    let load = spawn(&dir, "m1.toml", &load_args, "load.log");
    let started = Instant::now();

    let subnets: Vec<String> = (1..=20).map(|i| format!("10.{i}.7.0/24")).collect();
    // Per instant: each instance's (state, share), as it reported them.
    let mut seen: BTreeMap<u64, [Option<(String, f64)>; 3]> = BTreeMap::new();
    let (mut answer_rounds, mut answer_disagreements, mut spilled_answers) = (0, 0, 0);
    let mut restarted_at: Option<Instant> = None;
    let mut rejoined_after: Option<Duration> = None;
    let mut states = Vec::new();
    while started.elapsed() < Duration::from_secs(125) {
        // Read at mid-interval: the ticks publish just after each whole second plus the lag.
        let frac = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_millis();
        std::thread::sleep(Duration::from_millis(((1500 - frac as u64) % 1000).max(1)));
        let t = started.elapsed();
        // Instance 3 stops mid-burst and comes back 5 s later.
        if t > Duration::from_secs(35) && restarted_at.is_none() && instances[2].is_some() {
            instances[2] = None;
        }
        if t > Duration::from_secs(40) && restarted_at.is_none() {
            instances[2] = Some(spawn(&dir, "m3.toml", &["serve"], "m3-again.log"));
            restarted_at = Some(Instant::now());
        }
        let before: Vec<_> = admins.iter().map(|a| decision(a)).collect();
        for (i, d) in before.iter().enumerate() {
            if let Some((instant, state, share, by)) = d
                && by == "fleet"
            {
                seen.entry(*instant).or_default()[i] = Some((state.clone(), *share));
                if i == 0 && states.last().map(|s: &(String, u64)| &s.0) != Some(state) {
                    states.push((state.clone(), t.as_secs()));
                }
            }
        }
        if let (Some(at), None, Some(Some(d3)), Some(Some(d1))) =
            (restarted_at, rejoined_after, before.get(2), before.first())
            && d3.0 == d1.0
            && (&d3.1, d3.2) == (&d1.1, d1.2)
        {
            rejoined_after = Some(at.elapsed());
        }
        // The same answers from every instance, when all three decided the same instant.
        let instants: Vec<Option<u64>> = before.iter().map(|d| d.as_ref().map(|d| d.0)).collect();
        if instants.iter().all(|i| i.is_some() && *i == instants[0]) {
            let got: Vec<Vec<String>> = dnss.iter().map(|d| answers(d, &subnets)).collect();
            let after: Vec<Option<u64>> = admins.iter().map(|a| decision(a).map(|d| d.0)).collect();
            if after == instants {
                answer_rounds += 1;
                spilled_answers += got[0].iter().filter(|a| *a == "127.0.0.62").count();
                if got.iter().any(|g| *g != got[0] || g.len() != subnets.len()) {
                    answer_disagreements += 1;
                    eprintln!("answers differ at {t:?}: {got:?}");
                }
            }
        }
    }
    drop(load);
    // Disagreements: instants at which two instances published different decisions.
    let mut compared = 0;
    let mut disagreements = Vec::new();
    for (instant, per) in &seen {
        let have: Vec<&(String, f64)> = per.iter().flatten().collect();
        if have.len() < 2 {
            continue;
        }
        compared += 1;
        if have.iter().any(|d| *d != have[0]) {
            disagreements.push(format!("{instant}: {per:?}"));
        }
    }
    eprintln!(
        "fleet: {compared} instants compared, {} state/share disagreements; {answer_rounds} answer rounds ({} answers each), {answer_disagreements} disagreeing, {spilled_answers} spilled answers seen; states {states:?}; restarted instance rejoined after {rejoined_after:?}",
        disagreements.len(),
        subnets.len() * 3
    );
    let load_log = std::fs::read_to_string(dir.path().join("load.log")).unwrap_or_default();
    if baseline {
        eprintln!("baseline (no fleet mode): {}", disagreements.join("\n"));
        return;
    }
    assert!(compared >= 60, "only {compared} instants compared");
    assert!(disagreements.is_empty(), "instances disagreed:\n{}", disagreements.join("\n"));
    assert_eq!(answer_disagreements, 0);
    assert!(answer_rounds >= 30, "only {answer_rounds} answer rounds");
    assert!(states.iter().any(|s| s.0 == "Bursting"), "no burst: {states:?}\n{load_log}");
    assert!(spilled_answers > 0, "no subnet was ever spilled");
    assert_eq!(states.last().map(|s| s.0.as_str()), Some("Idle"), "{states:?}\n{load_log}");
    assert!(rejoined_after.is_some_and(|d| d < Duration::from_secs(10)), "{rejoined_after:?}");

    // Prometheus gone: every instance says it decides locally. Instances 1 and 3 hold the
    // fleet's decision; instance 2 falls back to its own probes, which find the on-premises
    // app down, so that endpoint is Degraded there and its safety exit warms a burst.
    let last: Vec<_> = admins.iter().map(|a| decision(a).unwrap()).collect();
    drop(prometheus);
    std::thread::sleep(Duration::from_secs(4));
    for (i, (a, before)) in admins.iter().zip(&last).enumerate() {
        let v = get(a, "/v1/status").unwrap();
        let b = &v["profiles"][0]["burst"];
        let e = &v["profiles"][0]["endpoints"][0];
        assert_eq!(b["fleet"]["decided_by"], "local", "{b}");
        assert!(b["fleet"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{b}");
        assert!(e["consensus"].is_null(), "{e}");
        let now = (b["state"].as_str().unwrap(), b["share"].as_f64().unwrap());
        if i == 1 {
            assert_eq!(e["status"], "Degraded", "{e}");
            assert_ne!(now.0, "Idle", "{b}");
        } else {
            assert_eq!(e["status"], "Online", "{e}");
            assert_eq!(now, (before.1.as_str(), before.2));
        }
    }
    let log = std::fs::read_to_string(dir.path().join("m2.log")).unwrap();
    assert!(log.contains("fleet health unreadable"), "{log}");
    let log = std::fs::read_to_string(dir.path().join("m1.log")).unwrap();
    assert!(log.contains("fleet data unreadable; deciding locally"), "{log}");
}
