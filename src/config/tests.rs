use super::*;
use std::net::SocketAddr;

fn errors(text: &str) -> String {
    parse(Path::new("m.toml"), text).unwrap_err().to_string()
}

const ZONE: &str = "[[zone]]\nname = \"example.com\"\nfile = \"z.zone\"\n";

#[test]
fn defaults_and_relative_paths() {
    let c = parse(Path::new("conf/m.toml"), ZONE).unwrap();
    assert_eq!(c.server.listen, vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]);
    assert_eq!(c.server.udp_payload, 1232);
    assert_eq!(c.zones[0].name.to_string(), "example.com.");
    assert_eq!(c.zones[0].file, Path::new("conf/z.zone"));
    assert_eq!(c.zones[0].file_loc.to_string(), "conf/m.toml:3:8");
}

#[test]
fn reports_each_problem_with_position() {
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1\", \"[::1]:53\"]\nudp_payload = 100\n{ZONE}{ZONE}"
    );
    let e = errors(&text);
    assert!(e.contains("m.toml:2:11: invalid listen address \"127.0.0.1\""), "{e}");
    assert!(e.contains("m.toml:3:15: udp_payload = 100 is out of range"), "{e}");
    assert!(e.contains("m.toml:8:8: zone example.com. is defined twice"), "{e}");
    assert!(e.contains("hint: the first definition is at m.toml:5:8"), "{e}");
}

#[test]
fn unknown_keys_and_wrong_types() {
    let e = errors(&format!("[server]\nlisten_on = []\n{ZONE}"));
    assert!(e.starts_with("error: m.toml:2:1: unknown field `listen_on`"), "{e}");
    let e = errors(&format!("[server]\nudp_workers = \"two\"\n{ZONE}"));
    assert!(e.starts_with("error: m.toml:2:15: invalid type"), "{e}");
}

/// The mistakes a new user makes, each with a message that says how to write it.
#[test]
fn friendly_messages_for_common_mistakes() {
    let profile = "[[profile]]\nname = \"www.example.com.\"\nmethod = \"priority\"\n";
    let cases: &[(String, &str)] = &[
        (
            format!("{ZONE}{profile}ttl = \"30\"\n"),
            "ttl is a number of seconds, without quotes: ttl = 30",
        ),
        (
            format!("[server]\nlisten = \"127.0.0.1:5353\"\n{ZONE}"),
            "listen is a list: listen = [\"127.0.0.1:5353\"]",
        ),
        (
            format!("{ZONE}{profile}[[profile.endpont]]\nname = \"a\"\n"),
            "valid keys and tables here: name, method, ttl",
        ),
    ];
    for (text, want) in cases {
        let e = errors(text);
        assert!(e.contains(want), "{text}\n---\n{e}");
    }
}

/// Keys inside monitor, load, burst and hook tables are checked like every other key,
/// and reported at the key: a misspelt `secrt` is an error, not an unsigned webhook.
#[test]
fn typed_tables_reject_unknown_and_mistyped_keys() {
    let base = "[[profile]]\nname = \"www.example.com.\"\nmethod = \"priority\"\n\
                [[profile.endpoint]]\nname = \"a\"\naddress = \"192.0.2.1\"\npriority = 1\n\
                [profile.endpoint.load]\nsource = \"push\"\ncapacity = 10\n\
                [[profile.endpoint]]\nname = \"b\"\naddress = \"192.0.2.2\"\npriority = 2\n";
    let burst = "[profile.burst]\nprimary = \"a\"\noverflow = \"b\"\nwarm_at = 0.6\nburst_at = 0.8\nrelease_at = 0.5\n";
    let cases: &[(String, &str)] = &[
        (
            format!(
                "{ZONE}{base}{burst}[profile.burst.on_warm]\nurl = \"http://127.0.0.1:9/\"\nsecrt = \"x\"\n"
            ),
            "unknown field `secrt`",
        ),
        (
            format!("{ZONE}{base}{burst}transition_ttl = \"5\"\n"),
            "transition_ttl is a number of seconds",
        ),
        (
            format!("{ZONE}{base}{burst}sustain = 30\n"),
            "sustain is a string; durations carry a unit: sustain = \"30s\"",
        ),
        (
            format!("{ZONE}{base}[profile.monitor]\nintervall = \"5s\"\n"),
            "unknown field `intervall`",
        ),
        (
            format!("{ZONE}{base}[profile.monitor]\nport = \"80\"\n"),
            "port is a number, without quotes: port = 80",
        ),
        (
            format!("{ZONE}{base}{burst}").replace("capacity = 10", "capacity = 10\ncapacty = 5"),
            "unknown field `capacty`",
        ),
    ];
    for (text, want) in cases {
        let e = errors(text);
        assert!(e.contains(want), "{text}\n---\n{e}");
    }
    // The key's own line is named, not the table's.
    let text = format!(
        "{ZONE}{base}{burst}[profile.burst.on_warm]\nurl = \"http://127.0.0.1:9/\"\nsecrt = \"x\"\n"
    );
    let line = text.lines().position(|l| l.starts_with("secrt")).unwrap() + 1;
    assert!(errors(&text).contains(&format!("m.toml:{line}:")), "{}", errors(&text));
}

#[test]
fn durations() {
    assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration("s"), None);
}

#[test]
fn nsid_identity_and_cookies() {
    let secret = "e5e973e5a6b2a43f48e7dc849e37bfcf";
    let ok = format!(
        "[server]\nnsid = \"a1\"\nidentity = \"edge\"\n[server.cookies]\nsecret = \"{secret}\"\n\
         accept = [\"00112233445566778899AABBCCDDEEFF\"]\n{ZONE}"
    );
    let c = parse(Path::new("m.toml"), &ok).unwrap();
    assert_eq!(
        (c.server.nsid.as_deref(), c.server.identity.as_deref()),
        (Some("a1"), Some("edge"))
    );
    let keys = c.server.cookies.unwrap();
    assert_eq!(keys.secret[..2], [0xe5, 0xe9]);
    assert_eq!(keys.accept[0][15], 0xff);
    assert!(parse(Path::new("m.toml"), ZONE).unwrap().server.cookies.is_none());
    let cases = [
        ("nsid = \"\"\n", "m.toml:2:8: nsid is 0 bytes long; it must be 1 to 128"),
        (
            "[server.cookies]\nsecret = \"abc\"\n",
            "m.toml:3:10: the cookie secret is not 32 hex digits",
        ),
        ("[server.cookies]\naccept = []\n", "[server.cookies] needs a secret"),
        (
            &format!("[server.cookies]\nsecret = \"{secret}\"\nsecret_env = \"X\"\n"),
            "m.toml:4:14: give one of secret, secret_env and secret_file",
        ),
        (
            &format!("[server.cookies]\nsecret = \"{secret}\"\naccept = [\"{secret}\"]\n"),
            "m.toml:4:11: this is the secret itself",
        ),
        (
            "[server.cookies]\nsecret_env = \"MERIDIAN_TEST_UNSET_COOKIE\"\n",
            "environment variable MERIDIAN_TEST_UNSET_COOKIE is not set",
        ),
    ];
    for (server, want) in cases {
        let e = errors(&format!("[server]\n{server}{ZONE}"));
        assert!(e.contains(want), "{server}: expected {want:?} in\n{e}");
    }
}

#[test]
fn zone_transfers() {
    let dir = std::env::temp_dir().join(format!("meridian-config-xfr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("xfr.secret"), "c2VjcmV0c2VjcmV0\n").unwrap();
    let key =
        "[[key]]\nname = \"xfr\"\nalgorithm = \"hmac-sha256\"\nsecret_file = \"xfr.secret\"\n";
    let ok = format!(
        "{key}[[zone]]\nname = \"example.com\"\nfile = \"z.zone\"\n\
         allow_transfer = [\"192.0.2.53\", \"2001:db8::/64\"]\ntransfer_key = \"xfr\"\n\
         notify = [\"192.0.2.53:53\"]\n"
    );
    let c = parse(&dir.join("m.toml"), &ok).unwrap_or_else(|e| panic!("{e}"));
    let t = &c.zones[0].transfer;
    assert_eq!((t.key.as_ref().map(|k| k.to_string()), t.notify.len()), (Some("xfr.".into()), 1));
    let secondary = format!(
        "{key}[[zone]]\nname = \"example.com\"\nfile = \"copy.zone\"\n\
         primaries = [\"192.0.2.1:53\", \"[2001:db8::1]:5353\"]\nprimary_key = \"xfr\"\n"
    );
    let c = parse(&dir.join("m.toml"), &secondary).unwrap_or_else(|e| panic!("{e}"));
    let s = c.zones[0].secondary.as_ref().expect("a secondary zone");
    assert_eq!(
        (
            s.primaries.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            s.key.as_ref().map(|k| k.to_string())
        ),
        (vec!["192.0.2.1:53".to_string(), "[2001:db8::1]:5353".to_string()], Some("xfr.".into()))
    );
    let _ = std::fs::remove_dir_all(&dir);
    let zone =
        |extra: &str| format!("[[zone]]\nname = \"example.com\"\nfile = \"z.zone\"\n{extra}");
    let c =
        parse(Path::new("m.toml"), &zone("allow_transfer = [\"10.0.0.0/8\", \"::1\"]\n")).unwrap();
    let t = &c.zones[0].transfer;
    assert_eq!(
        t.allow.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        ["10.0.0.0/8", "::1/128"]
    );
    for (extra, want) in [
        ("allow_transfer = [\"10.0.0/8\"]\n", "m.toml:4:19: invalid network \"10.0.0/8\""),
        (
            "transfer_key = \"nokey\"\nallow_transfer = []\n",
            "transfer_key \"nokey\" is not a [[key]]",
        ),
        ("notify = [\"192.0.2.1\"]\n", "m.toml:4:11: invalid notify address \"192.0.2.1\""),
        ("primaries = [\"192.0.2.1\"]\n", "m.toml:4:14: invalid primary address \"192.0.2.1\""),
        ("primaries = []\n", "m.toml:4:13: primaries is empty"),
        (
            "primaries = [\"192.0.2.1:53\", \"192.0.2.1:53\"]\n",
            "m.toml:4:30: primary 192.0.2.1:53 is listed twice",
        ),
        ("primary_key = \"xfr\"\n", "m.toml:4:15: primary_key without primaries"),
        (
            "primaries = [\"192.0.2.1:53\"]\nprimary_key = \"nokey\"\n",
            "m.toml:5:15: primary_key \"nokey\" is not a [[key]]",
        ),
    ] {
        let e = errors(&zone(extra));
        assert!(e.contains(want), "{extra}: expected {want:?} in\n{e}");
    }
}
