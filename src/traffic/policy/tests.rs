//! Routing decisions, data driven: a fixture is a TOML profile (run through the real
//! configuration parser and compiler), endpoint statuses, and a client; the expectation is
//! the chosen endpoints (or NODATA/SERVFAIL) and the ECS scope.

use super::*;
use crate::config;
use crate::traffic::geo::{Geo, GeoInfo};
use std::path::Path;

const HEAD: &str =
    "[geoip]\ndatabase = \"none.mmdb\"\n[[zone]]\nname = \"example.test\"\nfile = \"z\"\n";

fn policies(toml: &str) -> Policies {
    let cfg = config::parse(Path::new("t.toml"), &format!("{HEAD}{toml}"))
        .unwrap_or_else(|e| panic!("{e}"));
    compile(&cfg)
}

/// `statuses`: `name=Status` pairs (endpoints not listed are Online), for the first profile's
/// endpoints and any nested ones (names are unique across a fixture).
fn signals(p: &Policies, statuses: &str) -> Signals {
    let sig = Signals::new(p.profiles.len(), p.endpoints.iter().map(|_| Status::Online));
    for pair in statuses.split_whitespace() {
        let (name, st) = pair.split_once('=').unwrap();
        let id = p
            .endpoints
            .iter()
            .position(|e| e.name == name)
            .unwrap_or_else(|| panic!("no endpoint {name}"));
        let st = match st {
            "Online" => Status::Online,
            "Degraded" => Status::Degraded,
            "Checking" => Status::CheckingEndpoint,
            "Disabled" => Status::Disabled,
            "Stopped" => Status::Stopped,
            "Unmonitored" => Status::Unmonitored,
            _ => panic!("status {st}"),
        };
        sig.set_status(id as u32, st);
    }
    sig
}

/// `client`: `ADDR [cc=DE] [sub=DE-HE] [loc=LAT,LON] [prefix=N]`.
fn client(spec: &str) -> Client<'static> {
    let mut parts = spec.split_whitespace();
    let addr = parts.next().unwrap().parse().unwrap();
    let mut g = GeoInfo { found: false, ..Default::default() };
    let mut prefix = 0;
    for kv in parts {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "cc" => {
                let c = crate::traffic::geo::country_id(v.as_bytes()).unwrap();
                g.country = Some(c);
                g.group = crate::traffic::geo::country(c).map(|x| x.group);
                g.found = true;
            }
            "sub" => match Region::parse(v).unwrap() {
                Region::Subdivision(s) => g.subdivision = Some(s),
                _ => panic!(),
            },
            "loc" => {
                let (a, b) = v.split_once(',').unwrap();
                g.location = Some(Location { lat: a.parse().unwrap(), lon: b.parse().unwrap() });
            }
            "prefix" => prefix = v.parse().unwrap(),
            _ => panic!("client key {k}"),
        }
    }
    // A lookup lends the database's record; a test's record lives as long as the test
    // process, so that `client` stays a one-liner at every call site.
    Client { addr, geo: Some(Geo { record: Box::leak(Box::new(g)), prefix }) }
}

/// Runs the first profile and renders the result: `a,b scope=N`, `NODATA scope=N`, ...
///
/// Serving (`()`) and explaining (`Vec<String>`) take different paths through a decision (an
/// explanation looks at every endpoint first, serving only when the method found nothing), so
/// every fixture runs both and they must agree.
fn run(p: &Policies, sig: &Signals, c: &Client, seed: u64) -> String {
    let mut sel = Selection::default();
    let mut trace = Vec::new();
    select(p, 0, sig, c, &mut Rng::new(seed), &mut sel, &mut trace);
    let mut served = Selection::default();
    select(p, 0, sig, c, &mut Rng::new(seed), &mut served, &mut ());
    assert_eq!(
        (served.chosen(), served.scope, served.outcome),
        (sel.chosen(), sel.scope, sel.outcome),
        "serving and explaining disagree; the explanation:\n{}",
        trace.join("\n")
    );
    let what = match sel.outcome {
        Outcome::Answer => sel
            .chosen()
            .iter()
            .map(|&id| p.endpoints[id as usize].name.as_str())
            .collect::<Vec<_>>()
            .join(","),
        Outcome::NoData => "NODATA".into(),
        Outcome::ServFail => "SERVFAIL".into(),
    };
    format!("{what} scope={}", sel.scope)
}

#[track_caller]
fn check(toml: &str, cases: &[(&str, &str, &str)]) {
    let p = policies(toml);
    for (statuses, c, want) in cases {
        let got = run(&p, &signals(&p, statuses), &client(c), 1);
        assert_eq!(&got, want, "statuses {statuses:?}, client {c:?}");
    }
}

const PRIORITY: &str = r#"
[[profile]]
name = "www"
method = "priority"
[[profile.endpoint]]
name = "stack-hub"
address = "192.0.2.1"
priority = 1
[[profile.endpoint]]
name = "azure"
address = "192.0.2.2"
priority = 2
[[profile.endpoint]]
name = "dr"
address = "192.0.2.3"
priority = 3
enabled = false
"#;

#[test]
fn priority() {
    check(
        PRIORITY,
        &[
            ("", "10.0.0.1", "stack-hub scope=0"),
            ("stack-hub=Degraded", "10.0.0.1", "azure scope=0"),
            ("stack-hub=Checking", "10.0.0.1", "stack-hub scope=0"),
            ("stack-hub=Disabled", "10.0.0.1", "azure scope=0"),
            ("stack-hub=Stopped azure=Unmonitored", "10.0.0.1", "azure scope=0"),
            // All down: serve as if every *enabled* endpoint were up (dr stays out).
            ("stack-hub=Degraded azure=Degraded", "10.0.0.1", "stack-hub scope=0"),
        ],
    );
    let nodata = PRIORITY
        .replace("method = \"priority\"", "method = \"priority\"\nwhen_all_down = \"nodata\"");
    check(&nodata, &[("stack-hub=Degraded azure=Degraded", "10.0.0.1", "NODATA scope=0")]);
    let servfail = PRIORITY
        .replace("method = \"priority\"", "method = \"priority\"\nwhen_all_down = \"servfail\"");
    check(
        &servfail,
        &[
            ("stack-hub=Degraded azure=Degraded", "10.0.0.1", "SERVFAIL scope=0"),
            ("azure=Degraded", "10.0.0.1", "stack-hub scope=0"),
        ],
    );
}

const WEIGHTED: &str = r#"
[[profile]]
name = "www"
method = "weighted"
[[profile.endpoint]]
name = "a"
address = "192.0.2.1"
weight = 1
[[profile.endpoint]]
name = "b"
address = "192.0.2.2"
weight = 2
[[profile.endpoint]]
name = "c"
address = "192.0.2.3"
weight = 7
"#;

/// Weighted answers follow the weights: a chi-square goodness-of-fit test with a fixed seed.
/// With 2 degrees of freedom the statistic exceeds 13.82 with probability 0.001 when the
/// draws do follow the weights.
#[test]
fn weighted_follows_weights() {
    let p = policies(WEIGHTED);
    let sig = signals(&p, "");
    let c = client("10.0.0.1");
    let mut rng = Rng::new(42);
    let mut counts = [0u64; 3];
    let n = 100_000;
    let mut sel = Selection::default();
    for _ in 0..n {
        select(&p, 0, &sig, &c, &mut rng, &mut sel, &mut ());
        counts[sel.chosen()[0] as usize] += 1;
    }
    let expected = [0.1, 0.2, 0.7].map(|w| w * n as f64);
    let chi2: f64 = counts.iter().zip(expected).map(|(&o, e)| (o as f64 - e).powi(2) / e).sum();
    assert!(chi2 < 13.82, "chi-square {chi2:.2} for counts {counts:?}");

    // A degraded endpoint gets nothing; the others keep their proportions.
    let sig = signals(&p, "c=Degraded");
    let mut counts = [0u64; 3];
    for _ in 0..30_000 {
        select(&p, 0, &sig, &c, &mut rng, &mut sel, &mut ());
        counts[sel.chosen()[0] as usize] += 1;
    }
    assert_eq!(counts[2], 0);
    let ratio = counts[1] as f64 / counts[0] as f64;
    assert!((1.8..2.2).contains(&ratio), "{counts:?}");
}

/// Each weighted pick is the one the draw lands on with the available endpoints' weights laid
/// end to end, in configuration order: for profiles that fit the stack batch and for ones
/// that take the iterator path (more than 16 endpoints), with some endpoints down.
#[test]
fn weighted_pick_is_where_the_draw_lands() {
    for n in [3usize, 16, 17, 24] {
        let mut toml =
            String::from("[[profile]]\nname = \"w.example.test\"\nmethod = \"weighted\"\n");
        for i in 0..n {
            toml += &format!(
                "[[profile.endpoint]]\nname = \"e{i}\"\naddress = \"192.0.2.{}\"\nweight = {}\n",
                i + 1,
                1 + (i * 7) % 5
            );
        }
        let p = policies(&toml);
        let down: Vec<usize> = (0..n).filter(|i| i % 4 == 1).collect();
        let statuses: String = down.iter().map(|i| format!("e{i}=Degraded ")).collect();
        let sig = signals(&p, &statuses);
        let up: Vec<(String, u64)> = (0..n)
            .filter(|i| !down.contains(i))
            .map(|i| (format!("e{i}"), 1 + (i as u64 * 7) % 5))
            .collect();
        let total: u64 = up.iter().map(|(_, w)| w).sum();
        for seed in 0..300 {
            let draw = Rng::new(seed).below(total);
            let mut end = 0;
            let want = up.iter().find(|(_, w)| {
                end += w;
                draw < end
            });
            let got = run(&p, &sig, &client("10.0.0.1"), seed);
            assert_eq!(got, format!("{} scope=0", want.unwrap().0), "{n} endpoints, seed {seed}");
        }
    }
}

/// A sticky pick is the endpoint with the highest libm score `weight / −ln(u)` for the
/// client's /24 (the first of equals), `u` from the endpoint's stable hash and the prefix,
/// among those available: for profiles that fit the stack batch and for ones that take the
/// iterator path.
#[test]
fn sticky_pick_is_the_best_libm_score() {
    use super::rng::{mix, open_unit};
    for n in [3usize, 16, 17, 24] {
        let mut toml = String::from(
            "[[profile]]\nname = \"s.example.test\"\nmethod = \"weighted\"\nsticky = \"client-subnet\"\n",
        );
        let weight = |i: usize| 1 + (i * 7) % 5;
        for i in 0..n {
            toml += &format!(
                "[[profile.endpoint]]\nname = \"e{i}\"\naddress = \"192.0.2.{}\"\nweight = {}\n",
                i + 1,
                weight(i)
            );
        }
        let p = policies(&toml);
        let down: Vec<usize> = (0..n).filter(|i| i % 4 == 1).collect();
        let statuses: String = down.iter().map(|i| format!("e{i}=Degraded ")).collect();
        let sig = signals(&p, &statuses);
        for c in 0..200u32 {
            let addr = std::net::Ipv4Addr::from(0xc633_6400u32.wrapping_add(c << 8) | 7);
            let prefix = u32::from(addr) as u64 & 0xffff_ff00;
            let mut best: Option<(f64, usize)> = None;
            for i in (0..n).filter(|i| !down.contains(i)) {
                let seed = p.endpoints[i].key_hash;
                let u = open_unit(mix(prefix ^ mix(seed)));
                let score = weight(i) as f64 / -u.ln();
                if best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, i));
                }
            }
            let got = run(&p, &sig, &client(&addr.to_string()), c as u64);
            assert_eq!(got, format!("e{} scope=24", best.unwrap().1), "{n} endpoints, {addr}");
        }
    }
}

#[test]
fn weighted_sticky_by_client_subnet() {
    let sticky = WEIGHTED
        .replace("method = \"weighted\"", "method = \"weighted\"\nsticky = \"client-subnet\"");
    let p = policies(&sticky);
    let sig = signals(&p, "");
    let pick = |addr: &str, sig: &Signals, seed: u64| run(&p, sig, &client(addr), seed);
    // Same /24, any RNG: the same endpoint (and the scope says /24).
    let first = pick("198.51.100.7", &sig, 1);
    assert!(first.ends_with("scope=24"), "{first}");
    for (addr, seed) in [("198.51.100.200", 2), ("198.51.100.7", 99)] {
        assert_eq!(pick(addr, &sig, seed), first);
    }
    // Across many client prefixes the shares follow the weights, roughly.
    let mut counts = std::collections::HashMap::new();
    let mut before = Vec::new();
    for i in 0..6000u32 {
        let addr = format!("10.{}.{}.1", i / 256, i % 256);
        let got = pick(&addr, &sig, 0);
        *counts.entry(got.clone()).or_insert(0) += 1;
        before.push(got);
    }
    let c = counts.get("c scope=24").copied().unwrap_or(0) as f64 / 6000.0;
    assert!((0.65..0.75).contains(&c), "{counts:?}");
    // When b goes down, only b's clients move (rendezvous hashing).
    let sig_b = signals(&p, "b=Degraded");
    for (i, was) in before.iter().enumerate() {
        let addr = format!("10.{}.{}.1", i / 256, i % 256);
        let now = pick(&addr, &sig_b, 0);
        if !was.starts_with("b ") {
            assert_eq!(&now, was, "client {addr} moved although its endpoint stayed up");
        }
    }
}

const GEO: &str = r#"
[[profile]]
name = "www"
method = "geographic"
[[profile.endpoint]]
name = "seattle"
address = "192.0.2.1"
geo = ["US-WA"]
[[profile.endpoint]]
name = "us"
address = "192.0.2.2"
geo = ["US", "CA"]
[[profile.endpoint]]
name = "europe"
address = "192.0.2.3"
geo = ["GEO-EU", "GEO-ME"]
[[profile.endpoint]]
name = "rest"
address = "192.0.2.4"
geo = ["WORLD"]
"#;

#[test]
fn geographic_most_specific_region_wins() {
    check(
        GEO,
        &[
            ("", "10.0.0.1 cc=US sub=US-WA prefix=16", "seattle scope=16"),
            ("", "10.0.0.1 cc=US sub=US-OR prefix=20", "us scope=20"),
            ("", "10.0.0.1 cc=CA prefix=12", "us scope=12"),
            ("", "10.0.0.1 cc=DE prefix=10", "europe scope=10"),
            // Traffic Manager's groups: Saudi Arabia is GEO-ME, not Asia.
            ("", "10.0.0.1 cc=SA prefix=10", "europe scope=10"),
            ("", "10.0.0.1 cc=JP prefix=8", "rest scope=8"),
            ("", "10.0.0.1 prefix=8", "rest scope=8"),
            // Geo-fence: no failover to another region while others are up...
            ("seattle=Degraded", "10.0.0.1 cc=US sub=US-WA prefix=16", "NODATA scope=16"),
            // ...but when every endpoint is down, the all-down rule serves the mapped one.
            (
                "seattle=Degraded us=Degraded europe=Degraded rest=Degraded",
                "10.0.0.1 cc=US sub=US-WA prefix=16",
                "seattle scope=16",
            ),
        ],
    );
    // Without WORLD, an unmapped client gets NODATA.
    let no_world = GEO.replace("geo = [\"WORLD\"]", "geo = [\"AU\"]");
    check(&no_world, &[("", "10.0.0.1 cc=JP prefix=8", "NODATA scope=8")]);
}

const PERF: &str = r#"
[[profile]]
name = "www"
method = "performance"
[[profile.endpoint]]
name = "amsterdam"
address = "192.0.2.1"
location = "westeurope"
[[profile.endpoint]]
name = "virginia"
address = "192.0.2.2"
location = "eastus"
[[profile.endpoint]]
name = "sydney"
address = "192.0.2.3"
location = [-33.87, 151.21]
weight = 5
[[profile.endpoint]]
name = "sydney-2"
address = "192.0.2.4"
location = [-33.87, 151.21]
weight = 9
"#;

#[test]
fn performance_picks_the_nearest() {
    check(
        PERF,
        &[
            ("", "10.0.0.1 cc=DE loc=50.11,8.68 prefix=16", "amsterdam scope=16"),
            ("", "10.0.0.1 cc=US loc=40.71,-74.0 prefix=16", "virginia scope=16"),
            // A tie goes to the higher weight.
            ("", "10.0.0.1 cc=AU loc=-37.81,144.96 prefix=16", "sydney-2 scope=16"),
            ("sydney-2=Degraded", "10.0.0.1 cc=AU loc=-37.81,144.96 prefix=16", "sydney scope=16"),
            ("amsterdam=Degraded", "10.0.0.1 cc=DE loc=50.11,8.68 prefix=16", "virginia scope=16"),
        ],
    );
}

#[test]
fn multivalue_returns_available_endpoints() {
    let mv = r#"
[[profile]]
name = "www"
method = "multivalue"
max_answers = 2
[[profile.endpoint]]
name = "a"
address = "192.0.2.1"
[[profile.endpoint]]
name = "b"
address = "192.0.2.2"
[[profile.endpoint]]
name = "c"
address = "192.0.2.3"
"#;
    let p = policies(mv);
    let c = client("10.0.0.1");
    let mut seen = std::collections::HashSet::new();
    for seed in 0..50 {
        let got = run(&p, &signals(&p, "b=Degraded"), &c, seed);
        assert!(got == "a,c scope=0" || got == "c,a scope=0", "{got}");
        for name in run(&p, &signals(&p, ""), &c, seed).split(' ').next().unwrap().split(',') {
            seen.insert(name.to_string());
        }
    }
    assert_eq!(seen.len(), 3, "rotation spreads answers over every endpoint");
    // Exactly the rotation from the drawn start, in order, skipping what is down.
    let names = ["a", "b", "c"];
    for seed in 0..50 {
        let start = Rng::new(seed).below(3) as usize;
        let rot = |skip: &str| {
            let order = (0..3).map(|k| names[(start + k) % 3]).filter(|&x| x != skip);
            order.take(2).collect::<Vec<_>>().join(",")
        };
        assert_eq!(run(&p, &signals(&p, ""), &c, seed), format!("{} scope=0", rot("")));
        let got = run(&p, &signals(&p, "b=Degraded"), &c, seed);
        assert_eq!(got, format!("{} scope=0", rot("b")));
    }
}

/// With every endpoint down, each method answers as if the enabled ones were up (serve-all,
/// the default), or NODATA or SERVFAIL as configured. Serving only looks at availability
/// once the method has found nothing, so this runs through that second pass for each method.
#[test]
fn every_method_when_all_are_down() {
    let down = "a=Degraded b=Stopped c=Degraded";
    // Endpoints a, b (disabled) and c; `keys` gives them the lines their method needs.
    let head = |method: &str, extra: &str| {
        let keys = match method {
            "subnet" => ["subnets = [\"10.1.0.0/16\"]\n", "", ""],
            "geographic" => ["geo = [\"DE\"]\n", "geo = [\"JP\"]\n", "geo = [\"WORLD\"]\n"],
            _ => ["", "", ""],
        };
        format!(
            "[[profile]]\nname = \"www\"\nmethod = \"{method}\"\n{extra}\
             [[profile.endpoint]]\nname = \"a\"\naddress = \"192.0.2.1\"\nweight = 1\n{}\
             [[profile.endpoint]]\nname = \"b\"\naddress = \"192.0.2.2\"\nweight = 3\nenabled = false\n{}\
             [[profile.endpoint]]\nname = \"c\"\naddress = \"192.0.2.3\"\nweight = 2\n{}",
            keys[0], keys[1], keys[2]
        )
    };
    let cases: [(&str, &str, &str, &str); 6] = [
        ("priority", "", "10.1.2.3", "a scope=0"),
        ("weighted", "", "10.1.2.3", "?"),
        ("multivalue", "max_answers = 3\n", "10.1.2.3", "?"),
        ("subnet", "", "10.1.2.3", "a scope=16"),
        ("geographic", "", "10.1.2.3 cc=DE", "a scope=0"),
        ("geographic", "", "10.1.2.3 cc=FR", "c scope=0"),
    ];
    for (method, extra, c, want) in cases {
        let p = policies(&head(method, extra));
        for seed in 0..20 {
            let got = run(&p, &signals(&p, down), &client(c), seed);
            match method {
                // The disabled endpoint is never served, even now.
                "weighted" => assert!(got == "a scope=0" || got == "c scope=0", "{got}"),
                "multivalue" => assert!(got == "a,c scope=0" || got == "c,a scope=0", "{got}"),
                _ => assert_eq!(got, want, "{method}, client {c}"),
            }
        }
        for (rule, want) in [("nodata", "NODATA scope=0"), ("servfail", "SERVFAIL scope=0")] {
            let extra = format!("{extra}when_all_down = \"{rule}\"\n");
            let p = policies(&head(method, &extra));
            let got = run(&p, &signals(&p, down), &client(c), 1);
            assert_eq!(got, want, "{method} with when_all_down = {rule}, client {c}");
        }
    }
}

const SUBNET: &str = r#"
[[profile]]
name = "www"
method = "subnet"
[[profile.endpoint]]
name = "branch"
address = "192.0.2.1"
subnets = ["10.1.0.0/16", "2001:db8:1::/48"]
[[profile.endpoint]]
name = "hq"
address = "192.0.2.2"
subnets = ["10.2.0.0/16", "172.16.0.0/12"]
[[profile.endpoint]]
name = "internet"
address = "192.0.2.3"
"#;

#[test]
fn subnet_longest_match_and_fallback() {
    check(
        SUBNET,
        &[
            ("", "10.1.2.3", "branch scope=16"),
            ("", "2001:db8:1::5", "branch scope=48"),
            ("", "172.20.0.1", "hq scope=12"),
            // No rule: the fallback, valid for the widest block around the client that
            // overlaps no rule (10.3.0.1 shares 15 bits with 10.2.0.0/16, so 10.3.0.0/16).
            ("", "10.3.0.1", "internet scope=16"),
            ("", "203.0.113.1", "internet scope=2"),
            ("branch=Degraded", "10.1.2.3", "internet scope=16"),
        ],
    );
    let no_fallback = SUBNET.replace(
        "name = \"internet\"\naddress = \"192.0.2.3\"",
        "name = \"internet\"\naddress = \"192.0.2.3\"\nsubnets = [\"192.168.0.0/16\"]",
    );
    // 203.0.113.1 shares 4 bits with 192.168.0.0/16: the answer holds for 200.0.0.0/5.
    check(&no_fallback, &[("", "203.0.113.1", "NODATA scope=5")]);
}

const NESTED: &str = r#"
[[profile]]
name = "www"
method = "priority"
[[profile.endpoint]]
name = "eu"
profile = "eu.www"
priority = 1
min_child_endpoints = 2
[[profile.endpoint]]
name = "us"
profile = "us.www"
priority = 2

[[profile]]
name = "eu.www"
method = "weighted"
[[profile.endpoint]]
name = "eu-1"
address = "192.0.2.1"
[[profile.endpoint]]
name = "eu-2"
address = "192.0.2.2"

[[profile]]
name = "us.www"
method = "priority"
[[profile.endpoint]]
name = "us-1"
address = "192.0.2.3"
"#;

#[test]
fn nested_profiles_and_min_child_endpoints() {
    check(NESTED, &[("eu-2=Degraded", "10.0.0.1", "us-1 scope=0")]);
    let p = policies(NESTED);
    // Everything down: the all-down rule serves the first priority, and inside it (also all
    // down) the weighted choice between its endpoints.
    let all_down = signals(&p, "eu-1=Degraded eu-2=Degraded us-1=Degraded");
    for seed in 0..10 {
        let got = run(&p, &all_down, &client("10.0.0.1"), seed);
        assert!(got.starts_with("eu-"), "{got}");
    }
    let c = client("10.0.0.1");
    for seed in 0..20 {
        let got = run(&p, &signals(&p, ""), &c, seed);
        assert!(got == "eu-1 scope=0" || got == "eu-2 scope=0", "{got}");
    }
}

/// A nested endpoint is available while its child has at least the minimum of available
/// endpoints in all and with each family, whatever order they come in.
#[test]
fn nested_minimums_count_each_family() {
    let toml = r#"
[[profile]]
name = "www"
method = "priority"
[[profile.endpoint]]
name = "pool"
profile = "pool.www"
priority = 1
min_child_endpoints = 2
min_child_ipv6 = 1
[[profile.endpoint]]
name = "fallback"
address = "192.0.2.9"
priority = 2

[[profile]]
name = "pool.www"
method = "priority"
[[profile.endpoint]]
name = "four"
address = "192.0.2.1"
priority = 1
[[profile.endpoint]]
name = "four-b"
address = "192.0.2.2"
priority = 2
[[profile.endpoint]]
name = "six"
address = "2001:db8::6"
priority = 3
"#;
    check(
        toml,
        &[
            ("", "10.0.0.1", "four scope=0"),
            ("four=Degraded", "10.0.0.1", "four-b scope=0"),
            // Two available, but neither has an IPv6 address.
            ("six=Degraded", "10.0.0.1", "fallback scope=0"),
            // One IPv6, but only one available in all.
            ("four=Degraded four-b=Degraded", "10.0.0.1", "fallback scope=0"),
        ],
    );
}

#[test]
fn explain_trace_names_each_step() {
    let p = policies(NESTED);
    let mut trace = Vec::new();
    let mut sel = Selection::default();
    select(
        &p,
        0,
        &signals(&p, "eu-2=Degraded"),
        &client("10.0.0.1"),
        &mut Rng::new(3),
        &mut sel,
        &mut trace,
    );
    let text = trace.join("\n");
    for want in [
        "profile www.example.test. (priority, ttl 60)",
        "endpoint eu: unavailable (nested profile below its minimum of available endpoints)",
        "endpoint us: available",
        "priority: lowest available priority is 2 (us)",
        "chose nested endpoint us: descending",
        "  profile us.www.example.test. (priority, ttl 60)",
        "  chose us-1",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn configuration_errors() {
    let bad = |toml: &str| {
        config::parse(Path::new("t.toml"), &format!("{HEAD}{toml}")).unwrap_err().to_string()
    };
    let e = bad(&PRIORITY.replace("priority = 2", "priority = 1"));
    assert!(e.contains("t.toml:17:12: priority 1 is also \"stack-hub\"'s"), "{e}");
    let e = bad(&GEO.replace("geo = [\"US\", \"CA\"]", "geo = [\"US\", \"GEO-EU\"]"));
    assert!(e.contains("region GEO-EU is already mapped to \"us\""), "{e}");
    let e = bad(&GEO.replace("\"US\", \"CA\"", "\"US\", \"XX\""));
    assert!(e.contains("unknown region code \"XX\""), "{e}");
    let e = bad(&SUBNET.replace("\"172.16.0.0/12\"", "\"10.1.128.0/17\""));
    assert!(e.contains("subnet 10.1.128.0/17 overlaps 10.1.0.0/16 of \"branch\""), "{e}");
    let e = bad(&NESTED
        .replace("name = \"us-1\"\naddress = \"192.0.2.3\"", "name = \"back\"\nprofile = \"www\""));
    assert!(e.contains("nested profiles form a loop: us.www.example.test. -> www.example.test. -> us.www.example.test."), "{e}");
    let e = bad(
        "[[profile]]\nname = \"www\"\nmethod = \"multivalue\"\n[[profile.endpoint]]\nname = \"x\"\ncname = \"a.example.net\"\n",
    );
    assert!(e.contains("multivalue endpoint \"x\" must be an address endpoint"), "{e}");
    let e = bad(
        "[[profile]]\nname = \"www.other.org.\"\nmethod = \"priority\"\n[[profile.endpoint]]\nname = \"x\"\naddress = \"192.0.2.1\"\n",
    );
    assert!(e.contains("profile www.other.org. is not inside a served zone"), "{e}");
    let e = bad(
        "[[profile]]\nname = \"www\"\nmethod = \"fastest\"\n[[profile.endpoint]]\nname = \"x\"\naddress = \"192.0.2.1\"\n",
    );
    assert!(
        e.contains("unknown routing method \"fastest\"")
            && e.contains("hint: one of: priority, weighted"),
        "{e}"
    );
    // Depth: a chain of 11 profiles.
    let mut chain = String::new();
    for i in 0..11 {
        chain += &format!(
            "[[profile]]\nname = \"p{i}\"\nmethod = \"priority\"\n[[profile.endpoint]]\nname = \"e{i}\"\n"
        );
        chain += &if i < 10 {
            format!("profile = \"p{}\"\n", i + 1)
        } else {
            "address = \"192.0.2.1\"\n".into()
        };
    }
    assert!(bad(&chain).contains("profiles are nested 11 levels deep; the limit is 10"));
}

const BURST: &str = r#"
[[profile]]
name = "www"
method = "priority"
[profile.burst]
primary = "stack-hub"
overflow = ["azure"]
warm_at = 0.6
burst_at = 0.8
release_at = 0.5
[[profile.endpoint]]
name = "stack-hub"
address = "192.0.2.1"
priority = 1
[profile.endpoint.load]
source = "push"
capacity = 100
[[profile.endpoint]]
name = "azure"
address = "192.0.2.2"
priority = 2
"#;

/// Shares of answers per endpoint over `n` queries from distinct client prefixes.
fn spill_counts(
    p: &Policies,
    sig: &Signals,
    n: u32,
    seed: u64,
) -> std::collections::BTreeMap<String, u32> {
    let mut rng = Rng::new(seed);
    let mut out = std::collections::BTreeMap::new();
    let mut sel = Selection::default();
    for i in 0..n {
        let c = client(&format!("10.{}.{}.1", i / 256 % 256, i % 256));
        select(p, 0, sig, &c, &mut rng, &mut sel, &mut ());
        *out.entry(p.endpoints[sel.chosen()[0] as usize].name.clone()).or_insert(0) += 1;
    }
    out
}

#[test]
fn burst_spills_a_share_of_answers() {
    use crate::traffic::burst::State;
    let p = policies(BURST);
    let sig = signals(&p, "");
    assert_eq!(spill_counts(&p, &sig, 1000, 1).get("azure"), None, "idle: nothing spills");
    sig.set_burst(0, State::Bursting, 0.3);
    let c = spill_counts(&p, &sig, 20_000, 2);
    let share = c["azure"] as f64 / 20_000.0;
    assert!((0.28..0.32).contains(&share), "{c:?}");
    sig.set_burst(0, State::Bursting, 1.0);
    assert_eq!(spill_counts(&p, &sig, 1000, 3).get("stack-hub"), None);
    // A Degraded primary sends everything to the overflow, whatever the share.
    let sig = signals(&p, "stack-hub=Degraded");
    assert_eq!(spill_counts(&p, &sig, 1000, 4).get("stack-hub"), None);
}

/// Spilled answers spread over the available overflow endpoints by weight, for a list short
/// enough to be kept in one pass and for one longer than that.
#[test]
fn overflow_is_weighted_over_the_available_endpoints() {
    use crate::traffic::burst::State;
    for n in [3u32, 11] {
        let mut toml = BURST.replace("overflow = [\"azure\"]", &{
            let names: Vec<String> = (0..n).map(|i| format!("\"o{i}\"")).collect();
            format!("overflow = [{}]", names.join(", "))
        });
        toml = toml.replace(
            "[[profile.endpoint]]\nname = \"azure\"\naddress = \"192.0.2.2\"\npriority = 2\n",
            "",
        );
        for i in 0..n {
            toml += &format!(
                "[[profile.endpoint]]\nname = \"o{i}\"\naddress = \"192.0.2.{}\"\npriority = {}\nweight = {}\n",
                10 + i,
                2 + i,
                1 + i % 3
            );
        }
        let p = policies(&toml);
        let sig = signals(&p, "o1=Degraded");
        sig.set_burst(0, State::Bursting, 1.0);
        let draws = 30_000;
        let c = spill_counts(&p, &sig, draws, 9);
        assert_eq!(c.get("o1"), None, "a Degraded overflow endpoint is never chosen: {c:?}");
        assert_eq!(c.get("stack-hub"), None, "{c:?}");
        let total: u32 = (0..n).filter(|&i| i != 1).map(|i| 1 + i % 3).sum();
        for i in (0..n).filter(|&i| i != 1) {
            let want = draws as f64 * (1 + i % 3) as f64 / total as f64;
            let got = c.get(&format!("o{i}")).copied().unwrap_or(0) as f64;
            assert!(
                (got - want).abs() < 0.1 * want,
                "o{i}: {got} of {want} ({n} endpoints): {c:?}"
            );
        }
    }
}

#[test]
fn sticky_burst_spills_the_same_clients_everywhere() {
    use crate::traffic::burst::State;
    let sticky = BURST.replace("release_at = 0.5", "release_at = 0.5\nsticky = \"client-subnet\"");
    let p = policies(&sticky);
    let sig = signals(&p, "");
    sig.set_burst(0, State::Bursting, 0.3);
    let side = |addr: &str, seed: u64| run(&p, &sig, &client(addr), seed);
    let mut spilled_at_03 = Vec::new();
    for i in 0..2000u32 {
        let addr = format!("10.{}.{}.9", i / 256, i % 256);
        let first = side(&addr, 1);
        // Any instance (any RNG) and any host in the /24 gives the same answer.
        assert_eq!(side(&addr, 77), first);
        assert_eq!(side(&format!("10.{}.{}.200", i / 256, i % 256), 5), first);
        if first.starts_with("azure") {
            spilled_at_03.push(addr);
        }
    }
    let frac = spilled_at_03.len() as f64 / 2000.0;
    assert!((0.26..0.34).contains(&frac), "{frac}");
    // Raising the share only adds clients: those already spilled stay spilled.
    sig.set_burst(0, State::Bursting, 0.5);
    for addr in &spilled_at_03 {
        assert!(side(addr, 1).starts_with("azure"), "{addr} came back while the share grew");
    }
}

/// The answer of a sticky spill depends on the client prefix exactly when the share is
/// strictly between 0 and 1: then the ECS scope is the prefix the hash used (/24, /56), so a
/// resolver's subnet cache keeps one answer per prefix, not one for all its clients.
#[test]
fn sticky_spill_scope_is_the_hashed_prefix() {
    use crate::traffic::burst::State;
    let sticky = BURST.replace("release_at = 0.5", "release_at = 0.5\nsticky = \"client-subnet\"");
    let p = policies(&sticky);
    let sig = signals(&p, "");
    let scope =
        |addr: &str| run(&p, &sig, &client(addr), 1).rsplit_once("scope=").unwrap().1.to_string();
    sig.set_burst(0, State::Bursting, 0.3);
    let mut sides = std::collections::HashSet::new();
    for i in 0..50u32 {
        let addr = format!("10.0.{i}.9");
        assert_eq!(scope(&addr), "24", "{addr}");
        sides.insert(run(&p, &sig, &client(&addr), 1));
    }
    assert_eq!(sides.len(), 2, "both sides seen at share 0.3: {sides:?}");
    assert_eq!(scope("2001:db8:1:2::9"), "56");
    // At 0 and at 1 every client gets the same side: the prefix does not matter.
    sig.set_burst(0, State::Bursting, 0.0);
    assert_eq!(scope("10.0.1.9"), "0");
    sig.set_burst(0, State::Bursting, 1.0);
    assert_eq!(scope("10.0.1.9"), "0");
}

#[test]
fn burst_never_crosses_the_geo_fence() {
    use crate::traffic::burst::State;
    let geo = r#"
[[profile]]
name = "www"
method = "geographic"
[profile.burst]
primary = "de-onprem"
overflow = ["eu-cloud", "us-cloud"]
warm_at = 0.6
burst_at = 0.8
release_at = 0.5
[[profile.endpoint]]
name = "de-onprem"
address = "192.0.2.1"
geo = ["DE"]
[profile.endpoint.load]
source = "push"
capacity = 100
[[profile.endpoint]]
name = "eu-cloud"
address = "192.0.2.2"
geo = ["GEO-EU"]
[[profile.endpoint]]
name = "us-cloud"
address = "192.0.2.3"
geo = ["GEO-NA"]
"#;
    let p = policies(geo);
    let sig = signals(&p, "");
    sig.set_burst(0, State::Bursting, 1.0);
    for seed in 0..200 {
        // A German client spills to the European cloud only, never to the US one.
        assert_eq!(run(&p, &sig, &client("10.0.0.1 cc=DE prefix=16"), seed), "eu-cloud scope=16");
    }
    // With the European cloud down there is nowhere allowed to spill: kept on-premises.
    let sig = signals(&p, "eu-cloud=Degraded");
    sig.set_burst(0, State::Bursting, 1.0);
    assert_eq!(run(&p, &sig, &client("10.0.0.1 cc=DE prefix=16"), 1), "de-onprem scope=16");
}

#[test]
fn burst_configuration_errors() {
    let bad = |toml: &str| {
        config::parse(Path::new("t.toml"), &format!("{HEAD}{toml}")).unwrap_err().to_string()
    };
    let e = bad(&BURST.replace("release_at = 0.5", "release_at = 0.9"));
    assert!(e.contains("t.toml:10:1: burst thresholds are inconsistent: warm_at 0.6, burst_at 0.8, release_at 0.9"), "{e}");
    assert!(e.contains("hint: need warm_at < burst_at, release_at < target <= burst_at"), "{e}");
    let e = bad(&BURST.replace("warm_at = 0.6", "warm_at = 0.9"));
    assert!(e.contains("burst thresholds are inconsistent"), "{e}");
    let e = bad(&BURST.replace("overflow = [\"azure\"]", "overflow = [\"aws\"]"));
    assert!(
        e.contains("burst overflow: no endpoint \"aws\"")
            && e.contains("hint: endpoints: stack-hub, azure"),
        "{e}"
    );
    let e = bad(&BURST.replace("[profile.endpoint.load]\nsource = \"push\"\ncapacity = 100\n", ""));
    assert!(e.contains("every primary endpoint needs a load source"), "{e}");
    let e = bad(&BURST.replace("capacity = 100", "capacity = 0"));
    assert!(e.contains("load capacity must be a positive number"), "{e}");
    // Reported once: the burst rule does not add "needs a load source" for the same endpoint.
    assert!(!e.contains("every primary endpoint needs a load source"), "{e}");
    let e = bad(&BURST.replace("source = \"push\"", "source = \"http\""));
    assert!(e.contains("this load source needs url"), "{e}");
    let e = bad(&BURST.replace("release_at = 0.5", "release_at = 0.5\nsustain = \"soon\""));
    assert!(e.contains("burst sustain = \"soon\" is not a duration"), "{e}");
}

const VIEWS: &str = r#"
[[profile]]
name = "www"
method = "priority"
[profile.burst]
primary = "onprem"
overflow = "cloud"
warm_at = 0.6
burst_at = 0.8
release_at = 0.5
[[profile.view]]
name = "internal"
networks = ["10.0.0.0/8", "fd00::/8"]
[[profile.endpoint]]
name = "onprem"
address = "203.0.113.10"
priority = 1
views = { internal = "10.1.2.3" }
[profile.endpoint.load]
source = "push"
capacity = 100
[[profile.endpoint]]
name = "cloud"
address = "198.51.100.20"
priority = 2
"#;

#[test]
fn views_offer_only_their_endpoints() {
    use crate::traffic::burst::State;
    check(
        VIEWS,
        &[
            ("", "10.9.9.9", "onprem scope=8"),
            ("", "203.0.113.77", "onprem scope=1"),
            // Public clients fail over to the cloud...
            ("onprem=Degraded", "203.0.113.77", "cloud scope=1"),
            // ...internal clients are never sent there: all down within their view.
            ("onprem=Degraded", "10.9.9.9", "onprem scope=8"),
        ],
    );
    let p = policies(VIEWS);
    // The chosen endpoint carries the view it answers for.
    let mut sel = Selection::default();
    select(&p, 0, &signals(&p, ""), &client("10.9.9.9"), &mut Rng::new(1), &mut sel, &mut ());
    assert_eq!(sel.views[0], 0);
    select(&p, 0, &signals(&p, ""), &client("203.0.113.77"), &mut Rng::new(1), &mut sel, &mut ());
    assert_eq!(sel.views[0], NO_VIEW);
    // A burst spills public clients only.
    let sig = signals(&p, "");
    sig.set_burst(0, State::Bursting, 1.0);
    assert_eq!(run(&p, &sig, &client("203.0.113.77"), 1), "cloud scope=1");
    assert_eq!(run(&p, &sig, &client("10.9.9.9"), 1), "onprem scope=8");
    // Configuration errors.
    let bad = |toml: &str| {
        config::parse(Path::new("t.toml"), &format!("{HEAD}{toml}")).unwrap_err().to_string()
    };
    assert!(
        bad(&VIEWS.replace("views = { internal", "views = { inside"))
            .contains("no view \"inside\"")
    );
    assert!(
        bad(&VIEWS.replace("\"fd00::/8\"]", "\"fd00::/8\", \"10.1.0.0/16\"]"))
            .contains("view network 10.1.0.0/16 overlaps 10.0.0.0/8")
    );
}

/// The per-record tables (`compile_geo`) decide exactly as the searches and distances they
/// replace: for every network of a database, under several sets of statuses, the chosen
/// endpoints and the scope are the same with the table and without it.
#[test]
fn per_record_tables_decide_as_the_searches_do() {
    let csv = "cidr,country,continent,subdivision,lat,lon\n\
               10.0.0.0/16,US,NA,US-WA,47.6,-122.3\n10.1.0.0/16,US,NA,US-OR,45.5,-122.7\n\
               10.2.0.0/16,CA,NA,,,\n10.3.0.0/16,DE,EU,,50.1,8.7\n10.4.0.0/16,SA,AS,,,\n\
               10.5.0.0/16,JP,AS,,35.7,139.7\n10.6.0.0/16,AU,OC,,-37.8,145.0\n\
               10.7.0.0/16,BR,SA,,,\n2001:db8::/32,GB,EU,GB-SCT,55.9,-3.2\n";
    let rows = crate::traffic::geo::mmdb::parse_csv(csv).unwrap();
    let db =
        crate::traffic::geo::GeoDb::from_bytes(crate::traffic::geo::mmdb::build(&rows, "Test", 1))
            .unwrap();
    let addrs: Vec<std::net::IpAddr> = (0..9u8)
        .map(|i| std::net::IpAddr::from([10, i, 7, 1]))
        .chain(["2001:db8::1".parse().unwrap(), "192.0.2.9".parse().unwrap()])
        .collect();
    for (toml, statuses) in [
        (
            GEO.to_string(),
            vec![
                "",
                "seattle=Degraded",
                "seattle=Degraded us=Degraded europe=Degraded rest=Degraded",
            ],
        ),
        (PERF.into(), vec!["", "sydney-2=Degraded", "amsterdam=Degraded virginia=Degraded"]),
        // No two endpoints together: the nearest-first order answers, without a scan.
        (
            PERF.replace("[-33.87, 151.21]\nweight = 9", "[-37.81, 144.96]\nweight = 9"),
            vec![
                "",
                "sydney=Degraded",
                "amsterdam=Degraded sydney-2=Degraded",
                "amsterdam=Degraded virginia=Degraded sydney=Degraded sydney-2=Degraded",
            ],
        ),
    ] {
        let plain = policies(&toml);
        let mut tabled = policies(&toml);
        compile_geo(&mut tabled, &db);
        let t = &tabled.profiles[0].by_record;
        assert!(!t.pick.is_empty() || !t.distances.is_empty(), "a table was built");
        let ties = t.nearest.contains(&NEAREST_SCAN);
        assert_eq!(ties, toml.contains("[-33.87, 151.21]\nweight = 9"), "{:?}", t.nearest);
        for st in &statuses {
            for &addr in &addrs {
                let g = db.lookup(addr);
                let with = Client { addr, geo: Some(g) };
                let untabled = GeoInfo { value: None, ..*g.record };
                let without = Client { addr, geo: Some(Geo { record: &untabled, ..g }) };
                let a = run(&tabled, &signals(&tabled, st), &with, 1);
                let b = run(&plain, &signals(&plain, st), &without, 1);
                assert_eq!(a, b, "{addr} with {st:?}");
            }
        }
    }
}

/// The sticky choice is the one libm's scores make, bit for bit: over random weights and draws,
/// and over near ties built to sit inside the inline logarithm's error, a few ulps either side.
#[test]
fn rendezvous_picks_what_libm_scores_pick() {
    let exact = |c: &[(f64, f64, EndpointId)]| {
        let mut best: Option<(f64, EndpointId)> = None;
        for &(w, u, id) in c {
            let score = w / -u.ln();
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, id));
            }
        }
        best.map(|(_, id)| id)
    };
    let mut rng = Rng::new(7);
    let mut cands = Vec::new();
    let mut near_ties = 0;
    for round in 0..200_000u32 {
        cands.clear();
        let n = 1 + rng.below(6) as usize;
        for id in 0..n as EndpointId {
            let w = rng.below(5) as f64; // zero weights included
            cands.push((w, super::rng::open_unit(rng.next_u64()), id));
        }
        if round % 2 == 1 && n >= 2 && cands[0].0 > 0.0 && cands[1].0 > 0.0 {
            // Endpoint 1 ties endpoint 0 to within a few ulps of its draw.
            let (w0, u0, _) = cands[0];
            let w1 = cands[1].0;
            let mut u1 = (-(w1 * -u0.ln() / w0)).exp();
            for _ in 0..rng.below(8) {
                u1 = if rng.below(2) == 0 { u1.next_up() } else { u1.next_down() };
            }
            cands[1].1 = u1.min(1.0);
            near_ties += 1;
        }
        let got = methods::rendezvous(cands.iter().map(|&(w, u, id)| (w, 1.0 / w, u, id)));
        assert_eq!(got, exact(&cands), "{cands:?}");
    }
    assert!(near_ties > 10_000);
}
