//! The shipped burst scenarios (`examples/scenarios/`) keep the burst rule's invariants, and
//! `meridian simulate` is the server: one scenario run through the live burst task of a real
//! server in paused time gives exactly what `simulate` gives.

use crate::harness::*;
use meridian::tools::simulate::{self, Outcome, WORLD_OFFSET, World};
use meridian::traffic::burst::State;
use std::time::Duration;

fn shipped() -> Vec<(String, Outcome)> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join("examples/scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "the shipped suite: {files:?}");
    files
        .iter()
        .map(|f| {
            let snap = meridian::state::load(&repo().join("meridian.toml")).unwrap();
            let sc = meridian::config::load_scenario(f).unwrap();
            let name = f.file_stem().unwrap().to_string_lossy().into_owned();
            (name, simulate::run(&snap, &sc).unwrap())
        })
        .collect()
}

/// Is the transition at `i` a documented safety exit (allowed to skip cooldown and sustain)?
fn safety_exit(o: &Outcome, i: usize) -> bool {
    let (t, from, to) = o.transitions[i];
    let x = o.samples.iter().find(|x| x.t == t).expect("a sample at every tick");
    let over = x.utilisation.is_some_and(|u| u >= 1.0);
    match (from, to) {
        (State::Idle, State::Warming) | (State::Draining, State::Bursting) => x.primary_down,
        (State::Warming, State::Bursting) => x.primary_down || over,
        _ => false,
    }
}

#[test]
fn shipped_scenarios_keep_the_burst_invariants() {
    for (name, o) in shipped() {
        let r = o.rule.expect("the shipped profile has a burst rule");
        // The share stays in [0, max_share] and moves at most max_step per tick.
        for w in o.samples.windows(2) {
            assert!((0.0..=r.max_share).contains(&w[1].share), "{name}: share {}", w[1].share);
            let moved = (w[1].share - w[0].share).abs();
            assert!(moved <= r.max_step + 1e-9, "{name}: the share moved {moved} at {:?}", w[1].t);
        }
        // Routing never names a down endpoint.
        assert_eq!(o.answers_to_down, 0, "{name}");
        // Every state lasts at least cooldown, and thresholds held for sustain before a move,
        // except the documented safety exits.
        for i in 0..o.transitions.len() {
            let (t, from, to) = o.transitions[i];
            if safety_exit(&o, i) {
                continue;
            }
            if i > 0 {
                let lasted = t - o.transitions[i - 1].0;
                assert!(lasted >= r.cooldown, "{name}: {from:?} lasted {lasted:?} before {to:?}");
            }
            let window: Vec<f64> = o
                .samples
                .iter()
                .filter(|x| x.t + r.sustain >= t && x.t <= t)
                .filter_map(|x| x.utilisation)
                .collect();
            let held = |f: &dyn Fn(f64) -> bool| !window.is_empty() && window.iter().all(|&u| f(u));
            match (from, to) {
                (State::Idle, State::Warming) => {
                    assert!(held(&|u| u >= r.warm_at), "{name}: warmed at {t:?} on {window:?}")
                }
                (State::Bursting, State::Draining) | (State::Warming, State::Idle) => {
                    assert!(held(&|u| u <= r.release_at), "{name}: released at {t:?} on {window:?}")
                }
                _ => {}
            }
        }
        // No reversals (Warming → Idle, Draining → Bursting) in any shipped scenario.
        let card = simulate::scorecard(&o);
        assert_eq!(card.flaps, 0, "{name}: {:?}", o.transitions);
        match name.as_str() {
            "in-band-wander" | "short-spike" => {
                assert!(o.transitions.is_empty(), "{name}: {:?}", o.transitions)
            }
            "outage-return" => {
                // The return is no stampede: from the primary's return until demand falls, its
                // true utilisation stays under burst_at.
                let back = o.samples.iter().filter(|x| x.t >= Duration::from_secs(1020));
                for x in back.filter(|x| x.t < Duration::from_secs(1800)) {
                    let u = o.primary.iter().map(|&i| x.per_endpoint[i]).sum::<f64>() / o.capacity;
                    assert!(u < r.burst_at, "{name}: the primary took {u:.2} at {:?}", x.t);
                }
            }
            "slow-overflow" => {
                // Nothing spills before the overflow is up: the lead is never negative.
                assert!(card.warm_lead_s.is_some_and(|l| l >= 0.0), "{card:?}");
            }
            _ => {}
        }
        // Every scenario with a burst goes all the way home.
        if !o.transitions.is_empty() {
            assert_eq!(o.transitions.last().unwrap().2, State::Idle, "{name}: {:?}", o.transitions);
        }
    }
}

const PUSHED: &str = r#"
[[profile]]
name = "app.hc.test."
method = "priority"
ttl = 30
[profile.burst]
primary = "onprem"
overflow = "cloud"
warm_at = 0.6
burst_at = 0.8
release_at = 0.4
target = 0.7
sustain = "10s"
cooldown = "20s"
interval = "5s"
max_step = 0.2
max_share = 0.8
transition_ttl = 5
sticky = "client-subnet"
[[profile.endpoint]]
name = "onprem"
address = "192.0.2.1"
priority = 1
[profile.endpoint.load]
source = "push"
capacity = 50
half_life = "4s"
stale_after = "10s"
[[profile.endpoint]]
name = "cloud"
address = "192.0.2.2"
priority = 2
[profile.endpoint.load]
source = "push"
capacity = 100
half_life = "4s"
stale_after = "10s"
"#;

const SCENARIO: &str = r#"
profile = "app.hc.test"
duration = "12m"
resolvers = 300
demand = [["0s", 20], ["60s", 20], ["90s", 80], ["400s", 80], ["480s", 15], ["720s", 15]]

[[event]]
at = "200s"
endpoint = "onprem"
status = "Degraded"

[[event]]
at = "260s"
endpoint = "onprem"
status = "Online"

[[event]]
at = "300s"
endpoint = "cloud"
load = "silent"

[[event]]
at = "340s"
endpoint = "cloud"
load = "resumed"
"#;

/// (time, state, share, utilisation) at every tick.
type Seen = Vec<(Duration, State, f64, Option<f64>)>;

/// The same scenario through `simulate` and through a real server whose burst task runs in
/// paused tokio time, with the same world feeding its load samples: the same state and share
/// at every tick, bit for bit.
#[tokio::test(start_paused = true)]
async fn simulate_is_the_server() {
    let dir = TempDir::new();
    dir.write("hc.zone", crate::health::HC_ZONE);
    let cfg = dir.write(
        "meridian.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 1\n[admin]\nenabled = false\n\
             [[zone]]\nname = \"hc.test.\"\nfile = \"hc.zone\"\n{PUSHED}"
        ),
    );
    let sc_path = dir.write("scenario.toml", SCENARIO);
    let sc = meridian::config::load_scenario(&sc_path).unwrap();

    let offline = simulate::run(&meridian::state::load(&cfg).unwrap(), &sc).unwrap();
    let offline: Seen =
        offline.samples.iter().map(|x| (x.t, x.state, x.share, x.utilisation)).collect();
    assert!(offline.iter().any(|x| x.1 == State::Bursting), "the scenario bursts");

    let running =
        meridian::app::start(meridian::app::Options { config: cfg, reload_on_sighup: false })
            .await
            .unwrap();
    let t0 = tokio::time::Instant::now();
    let snap = running.shared().load_full();
    let mut world = World::new(&snap, &sc).unwrap();
    let pid = snap.policies.profile_by_name("app.hc.test").unwrap();
    let interval = Duration::from_secs(5);
    let mut live: Seen = Vec::new();
    let (mut next_world, mut next_look) = (WORLD_OFFSET, WORLD_OFFSET / 2);
    while next_look <= sc.duration + WORLD_OFFSET {
        if next_world < next_look {
            tokio::time::sleep_until(t0 + next_world).await;
            world.advance(&snap, next_world, meridian::control::load::now());
            next_world += sc.step;
        } else {
            // Just after a tick (ticks fall on multiples of the interval), before the world.
            tokio::time::sleep_until(t0 + next_look).await;
            let u = snap.signals.profile(pid).burst().as_ref().and_then(|b| b.utilisation);
            let t = next_look - WORLD_OFFSET / 2;
            live.push((t, snap.signals.burst_state(pid), snap.signals.burst_share(pid), u));
            next_look += interval;
        }
    }
    running.shutdown().await;
    assert_eq!(live.len(), offline.len());
    for (a, b) in offline.iter().zip(&live) {
        assert_eq!(a, b, "simulate (left) and the server (right) differ");
    }
}

/// `meridian simulate` of a fleet rule (`[profile.burst.fleet]`): every tick is decided by the
/// fleet's replay over the window of simulated shared data, and the table shows the fleet view.
/// On the shipped 2.5× ramp it bursts, holds and comes home without a reversal.
#[test]
fn simulate_shows_the_fleet_view() {
    let dir = TempDir::new();
    let text = std::fs::read_to_string(repo().join("meridian.toml")).unwrap();
    let http = "source = \"http\"\nurl = \"http://127.0.0.11:8080/metrics\"\nmetric = \"demo_requests_per_second\"";
    assert!(text.contains(http), "the shipped stack-hub load source changed");
    let text = text
        .replace(http, "source = \"prometheus\"\nurl = \"http://127.0.0.1:9090\"\nquery = 'demo_requests_per_second{endpoint=\"stack-hub\"}'")
        .replacen("transition_ttl = 5\n", "transition_ttl = 5\n[profile.burst.fleet]\nwindow = \"10m\"\n", 1)
        .replace("\"zones/", &format!("\"{}/zones/", repo().display()))
        .replace("\"geoip/", &format!("\"{}/geoip/", repo().display()));
    let cfg = dir.write("fleet.toml", &text);
    let snap = meridian::state::load(&cfg).unwrap();
    let sc =
        meridian::config::load_scenario(&repo().join("examples/scenarios/ramp-2.5x.toml")).unwrap();
    let o = simulate::run(&snap, &sc).unwrap();
    assert_eq!(o.fleet_window, Some(Duration::from_secs(600)));
    let table = simulate::table(&o, 30);
    assert!(table.contains("fleet mode: each tick is an aligned instant; it replays the lifecycle over the last 10m"), "{table}");
    assert!(table.contains("points, fleet share"), "{table}");
    let states: Vec<State> = o.transitions.iter().map(|t| t.2).collect();
    assert_eq!(states, [State::Warming, State::Bursting, State::Draining, State::Idle], "{table}");
    // The window is full once the simulation is 10 minutes in: 121 points at 5 s.
    let late = o.samples.iter().find(|x| x.t >= Duration::from_secs(900)).unwrap();
    assert_eq!(late.fleet.as_ref().map(|f| f.points), Some(121));
    let card = simulate::scorecard(&o);
    assert_eq!(card.flaps, 0);
    eprintln!("fleet simulate of ramp-2.5x: {card:?}");
}
