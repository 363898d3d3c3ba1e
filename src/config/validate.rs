//! From the schema to the model: every value range-checked, every name resolved, every
//! cross-reference checked, and every problem collected with its position.

use super::model::*;
use super::parse_duration;
use super::schema::*;
use crate::diag::{Diagnostic, Diagnostics, Loc};
use crate::dns::name::Name;
use crate::traffic::geo::{self, Cidr, Location, Region};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

pub(super) struct Validator<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
    pub(super) lines: crate::diag::Lines,
    pub(super) diags: Diagnostics,
    /// Whether the configuration has a `[fleet]` table (monitors' consensus needs one).
    pub(super) fleet_declared: bool,
}

impl Validator<'_> {
    /// A URL Meridian will call: `http://` or `https://`, with a host.
    fn call_url(&mut self, u: &Spanned<String>, what: &str, example: &str) -> Option<String> {
        match url::Url::parse(u.get_ref()) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.host_str().is_some() => {
                Some(u.get_ref().clone())
            }
            Ok(p) if matches!(p.scheme(), "http" | "https") => {
                self.error(u, format!("{what} url {:?} has no host", u.get_ref()), None);
                None
            }
            Ok(p) => {
                let msg = format!(
                    "{what} url {:?}: the scheme {:?} is not http or https",
                    u.get_ref(),
                    p.scheme()
                );
                self.error(u, msg, Some(&format!("e.g. {example}")));
                None
            }
            Err(e) => {
                self.error(
                    u,
                    format!("{what} url {:?} is not a URL: {e}", u.get_ref()),
                    Some(&format!("e.g. {example}")),
                );
                None
            }
        }
    }

    /// A secret from an environment variable or a file (never inline).
    fn secret(
        &mut self,
        env: Option<&Spanned<String>>,
        file: Option<&Spanned<String>>,
        what: &str,
    ) -> Option<String> {
        match (env, file) {
            (Some(e), None) => match std::env::var(e.get_ref()) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                _ => {
                    let msg = format!("{what}: environment variable {} is not set", e.get_ref());
                    self.error(e, msg, None);
                    None
                }
            },
            (None, Some(f)) => {
                let path = self.relative(f.get_ref());
                match std::fs::read_to_string(&path) {
                    Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                    Ok(_) => {
                        self.error(f, format!("{what}: {} is empty", path.display()), None);
                        None
                    }
                    Err(e) => {
                        self.error(f, format!("{what}: cannot read {}: {e}", path.display()), None);
                        None
                    }
                }
            }
            (Some(e), Some(_)) => {
                self.error(
                    e,
                    format!("{what}: give the environment variable or the file, not both"),
                    None,
                );
                None
            }
            (None, None) => None,
        }
    }

    /// A path relative to the configuration file's directory.
    fn relative(&self, p: &str) -> std::path::PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(p)
    }

    /// A PEM file that must hold at least one certificate.
    fn pem_certs(&mut self, at: &Spanned<String>, what: &str) -> Option<std::path::PathBuf> {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let path = self.relative(at.get_ref());
        match CertificateDer::pem_file_iter(&path).map(|i| i.collect::<Result<Vec<_>, _>>()) {
            Ok(Ok(certs)) if !certs.is_empty() => Some(path),
            Ok(Ok(_)) => {
                self.error(at, format!("{what}: no certificate in {}", path.display()), None);
                None
            }
            Ok(Err(e)) | Err(e) => {
                self.error(
                    at,
                    format!("{what}: cannot read certificates from {}: {e}", path.display()),
                    None,
                );
                None
            }
        }
    }

    /// A PEM certificate chain and its key (`{prefix}_cert`, `{prefix}_key`), both or neither,
    /// each readable: the paths, resolved against the configuration's directory.
    fn cert_and_key(
        &mut self,
        cert: Option<&Spanned<String>>,
        key: Option<&Spanned<String>>,
        what: &str,
        prefix: &str,
    ) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let cert = self.pem_certs(cert, &format!("{what} {prefix}_cert"));
                let key_path = self.relative(key.get_ref());
                if let Err(e) = PrivateKeyDer::from_pem_file(&key_path) {
                    let msg = format!(
                        "{what} {prefix}_key: cannot read a private key from {}: {e}",
                        key_path.display()
                    );
                    self.error(key, msg, None);
                    return None;
                }
                cert.map(|c| (c, key_path))
            }
            (Some(x), None) | (None, Some(x)) => {
                self.error(x, format!("{what}: {prefix}_cert and {prefix}_key go together"), None);
                None
            }
            (None, None) => None,
        }
    }

    /// `client = { ... }`: how a webhook or load source URL is called.
    fn client(&mut self, raw: Option<&Spanned<RawClient>>, what: &str) -> ClientConfig {
        let mut c = ClientConfig::default();
        let Some(at) = raw else { return c };
        let r = at.get_ref();
        c.verify_tls = r.verify_tls.unwrap_or(true);
        c.ca_file = r.ca_file.as_ref().and_then(|f| self.pem_certs(f, &format!("{what} ca_file")));
        c.client_cert =
            self.cert_and_key(r.client_cert.as_ref(), r.client_key.as_ref(), what, "client");
        let bearer = self.secret(
            r.bearer_token_env.as_ref(),
            r.bearer_token_file.as_ref(),
            &format!("{what} bearer token"),
        );
        let password = self.secret(
            r.basic_password_env.as_ref(),
            r.basic_password_file.as_ref(),
            &format!("{what} basic password"),
        );
        c.auth = match (bearer, &r.basic_user, password) {
            (Some(_), Some(u), _) => {
                self.error(
                    u,
                    format!("{what}: a bearer token or basic credentials, not both"),
                    None,
                );
                None
            }
            (Some(t), None, _) => Some(Auth::Bearer(t)),
            (None, Some(u), Some(p)) => {
                Some(Auth::Basic { user: u.get_ref().clone(), password: p })
            }
            (None, Some(u), None) => {
                let hint = "add basic_password_env = \"VAR\" or basic_password_file = \"path\"";
                self.error(u, format!("{what}: basic_user needs a password"), Some(hint));
                None
            }
            (None, None, _) => None,
        };
        for (k, v) in r.headers.clone().unwrap_or_default() {
            let name_ok = !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !name_ok || v.contains(['\r', '\n']) {
                self.error(at, format!("{what}: header {k:?} is not a valid header"), None);
                continue;
            }
            if ["host", "content-length", "authorization", "connection", "transfer-encoding"]
                .contains(&k.to_ascii_lowercase().as_str())
            {
                self.error(
                    at,
                    format!("{what}: header {k:?} is set by Meridian"),
                    Some("credentials go in bearer_token_env / basic_user"),
                );
                continue;
            }
            c.headers.push((k, v));
        }
        c
    }

    pub(super) fn loc<T>(&self, s: &Spanned<T>) -> Loc {
        self.lines.loc(self.path, self.text, s.span().start)
    }

    fn error<T>(&mut self, at: &Spanned<T>, message: impl Into<String>, hint: Option<&str>) {
        let mut d = Diagnostic::new(self.loc(at), message);
        if let Some(h) = hint {
            d = d.with_hint(h);
        }
        self.diags.push(d);
    }

    fn int_in(
        &mut self,
        v: Option<Spanned<i64>>,
        key: &str,
        range: (i64, i64),
        default: i64,
    ) -> i64 {
        let Some(v) = v else { return default };
        if (range.0..=range.1).contains(v.get_ref()) {
            *v.get_ref()
        } else {
            let msg = format!("{key} = {} is out of range", v.get_ref());
            self.error(&v, msg, Some(&format!("allowed: {} to {}", range.0, range.1)));
            default
        }
    }

    pub(super) fn server(&mut self, raw: Option<RawServer>) -> Server {
        let raw = raw.unwrap_or(RawServer {
            listen: None,
            udp_workers: None,
            udp_payload: None,
            tcp_max_connections: None,
            tcp_idle_timeout: None,
            drain: None,
            ecs: None,
            watch: None,
            rrl: None,
            query_log: None,
            nsid: None,
            identity: None,
            cookies: None,
        });
        let mut listen = Vec::new();
        match raw.listen {
            None => listen.push(DEFAULT_LISTEN.parse().expect("default listen address parses")),
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.error(
                        &list,
                        "listen is empty",
                        Some("give at least one address, e.g. [\"127.0.0.1:5353\"]"),
                    );
                }
                for a in list.get_ref() {
                    match a.get_ref().parse::<SocketAddr>() {
                        Ok(addr) if listen.contains(&addr) => {
                            self.error(a, format!("listen address {addr} is given twice"), None)
                        }
                        Ok(addr) => listen.push(addr),
                        Err(_) => self.error(
                            a,
                            format!("invalid listen address {:?}", a.get_ref()),
                            Some("write IP:PORT, e.g. \"127.0.0.1:5353\" or \"[::1]:5353\""),
                        ),
                    }
                }
            }
        }
        let udp_workers = self.int_in(raw.udp_workers, "udp_workers", (0, 256), 0) as usize;
        let udp_payload = self.int_in(
            raw.udp_payload,
            "udp_payload",
            (512, MAX_UDP_PAYLOAD as i64),
            DEFAULT_UDP_PAYLOAD as i64,
        ) as u16;
        let tcp_max_connections =
            self.int_in(raw.tcp_max_connections, "tcp_max_connections", (1, 1_000_000), 1024)
                as usize;
        let tcp_idle_timeout = match raw.tcp_idle_timeout {
            None => Duration::from_secs(10),
            Some(s) => match parse_duration(s.get_ref()) {
                Some(d) if d >= Duration::from_millis(100) && d <= Duration::from_secs(3600) => d,
                _ => {
                    let msg = format!("invalid tcp_idle_timeout {:?}", s.get_ref());
                    self.error(&s, msg, Some("a duration from \"100ms\" to \"1h\", e.g. \"10s\""));
                    Duration::from_secs(10)
                }
            },
        };
        let drain = match raw.drain {
            None => Duration::ZERO,
            Some(s) => match parse_duration(s.get_ref()) {
                Some(d) if d <= Duration::from_secs(300) => d,
                _ => {
                    let msg = format!("invalid drain {:?}", s.get_ref());
                    self.error(&s, msg, Some("a duration from \"0s\" to \"5m\", e.g. \"5s\""));
                    Duration::ZERO
                }
            },
        };
        let ecs = raw.ecs.unwrap_or(true);
        let watch = raw.watch.unwrap_or(false);
        let query_log = match raw.query_log {
            None => 0.0,
            Some(q) if (0.0..=1.0).contains(q.get_ref()) => *q.get_ref(),
            Some(q) => {
                self.error(
                    &q,
                    "query_log is the fraction of queries logged, from 0.0 to 1.0",
                    Some("e.g. 0.01 logs one query in a hundred"),
                );
                0.0
            }
        };
        let rrl = raw.rrl.map(|r| {
            let r = r.into_inner();
            crate::dns::rrl::RrlConfig {
                responses_per_second: self.int_in(
                    r.responses_per_second,
                    "responses_per_second",
                    (1, 1_000_000),
                    20,
                ) as u32,
                slip: self.int_in(r.slip, "slip", (0, 10), 2) as u32,
                ipv4_prefix: self.int_in(r.ipv4_prefix, "ipv4_prefix", (8, 32), 24) as u8,
                ipv6_prefix: self.int_in(r.ipv6_prefix, "ipv6_prefix", (16, 128), 56) as u8,
            }
        });
        let mut text = |v: Option<Spanned<String>>, key: &str, max: usize| {
            let v = v?;
            let len = v.get_ref().len();
            if len == 0 || len > max {
                let msg = format!("{key} is {len} bytes long; it must be 1 to {max}");
                self.error(&v, msg, None);
                return None;
            }
            Some(v.into_inner())
        };
        let nsid = text(raw.nsid, "nsid", 128);
        let identity = text(raw.identity, "identity", 255);
        let cookies = raw.cookies.and_then(|c| self.cookies(&c));
        Server {
            listen,
            udp_workers,
            udp_payload,
            tcp_max_connections,
            tcp_idle_timeout,
            drain,
            ecs,
            watch,
            rrl,
            query_log,
            nsid,
            identity,
            cookies,
        }
    }

    /// A zone's `allow_transfer` (networks, or single addresses), `transfer_key` (a
    /// `[[key]]`) and `notify` (secondaries, `IP:PORT`).
    fn transfer(&mut self, z: &RawZone, keys: &[crate::dns::tsig::Key]) -> Transfer {
        let mut t = Transfer::default();
        for a in z.allow_transfer.iter().flat_map(|l| l.get_ref()) {
            let text = a.get_ref().trim();
            let full = if text.contains('/') {
                text.to_string()
            } else if text.contains(':') {
                format!("{text}/128")
            } else {
                format!("{text}/32")
            };
            match crate::traffic::geo::mmdb::parse_cidr(&full) {
                Ok((addr, prefix)) => t.allow.push(crate::traffic::geo::Cidr { addr, prefix }),
                Err(e) => self.error(
                    a,
                    format!("invalid network {text:?} in allow_transfer: {e}"),
                    Some("write an address or a network, e.g. \"192.0.2.53\" or \"10.0.0.0/8\""),
                ),
            }
        }
        if let Some(k) = &z.transfer_key {
            match Name::parse(k.get_ref(), Some(&Name::root())) {
                Ok(n) if keys.iter().any(|key| key.name == n.to_lowercase()) => {
                    t.key = Some(n.to_lowercase())
                }
                _ => self.error(
                    k,
                    format!("transfer_key {:?} is not a [[key]]", k.get_ref()),
                    Some("define it with [[key]] (name, algorithm, secret_file) or a bind_file"),
                ),
            }
            if z.allow_transfer.is_none() {
                self.error(k, "transfer_key without allow_transfer allows nobody", None);
            }
        }
        for n in z.notify.iter().flat_map(|l| l.get_ref()) {
            match n.get_ref().parse::<SocketAddr>() {
                Ok(a) => t.notify.push(a),
                Err(_) => self.error(
                    n,
                    format!("invalid notify address {:?}", n.get_ref()),
                    Some("write IP:PORT, e.g. \"192.0.2.53:53\""),
                ),
            }
        }
        t
    }

    /// A zone's `primaries` (`IP:PORT`, at least one) and `primary_key` (a `[[key]]`): the
    /// zone is then transferred in, and `file` is where its last good copy is kept.
    fn secondary(&mut self, z: &RawZone, keys: &[crate::dns::tsig::Key]) -> Option<Secondary> {
        let Some(list) = &z.primaries else {
            if let Some(k) = &z.primary_key {
                self.error(
                    k,
                    "primary_key without primaries",
                    Some("add primaries = [\"IP:PORT\"]"),
                );
            }
            return None;
        };
        let mut s = Secondary { primaries: Vec::new(), key: None };
        for p in list.get_ref() {
            match p.get_ref().parse::<SocketAddr>() {
                Ok(a) if !s.primaries.contains(&a) => s.primaries.push(a),
                Ok(a) => self.error(p, format!("primary {a} is listed twice"), None),
                Err(_) => self.error(
                    p,
                    format!("invalid primary address {:?}", p.get_ref()),
                    Some("write IP:PORT, e.g. \"192.0.2.1:53\""),
                ),
            }
        }
        if list.get_ref().is_empty() {
            self.error(list, "primaries is empty", Some("name at least one primary, IP:PORT"));
        }
        if let Some(k) = &z.primary_key {
            match Name::parse(k.get_ref(), Some(&Name::root())) {
                Ok(n) if keys.iter().any(|key| key.name == n.to_lowercase()) => {
                    s.key = Some(n.to_lowercase())
                }
                _ => self.error(
                    k,
                    format!("primary_key {:?} is not a [[key]]", k.get_ref()),
                    Some("define it with [[key]] (name, algorithm, secret_file) or a bind_file"),
                ),
            }
        }
        Some(s)
    }

    /// `[[key]]`: TSIG keys, each with its name, algorithm and base64 secret from the
    /// environment or a file, or all the keys of a BIND key file (`tsig-keygen`'s output).
    pub(super) fn keys(&mut self, raw: &[Spanned<RawKey>]) -> Vec<crate::dns::tsig::Key> {
        use crate::dns::tsig::{Algorithm, Key};
        use base64::Engine;
        let mut keys: Vec<Key> = Vec::new();
        let algorithms = "hmac-sha256, hmac-sha384, hmac-sha512 or hmac-sha1";
        for table in raw {
            let r = table.get_ref();
            // (name, algorithm, base64 secret, where to point at)
            let mut found: Vec<(String, String, String, &Spanned<String>)> = Vec::new();
            match (&r.bind_file, &r.name) {
                (Some(f), None) => {
                    if let Some(x) =
                        r.algorithm.as_ref().or(r.secret_env.as_ref()).or(r.secret_file.as_ref())
                    {
                        self.error(
                            x,
                            "a bind_file gives the name, algorithm and secret itself",
                            None,
                        );
                        continue;
                    }
                    let path = self.relative(f.get_ref());
                    match std::fs::read_to_string(&path) {
                        Ok(text) => match crate::dns::tsig::parse_bind_keys(&text) {
                            Ok(list) if list.is_empty() => {
                                self.error(f, format!("{} defines no key", path.display()), None)
                            }
                            Ok(list) => {
                                found.extend(list.into_iter().map(|(n, a, s)| (n, a, s, f)))
                            }
                            Err(e) => self.error(f, format!("{}: {e}", path.display()), None),
                        },
                        Err(e) => {
                            self.error(f, format!("cannot read {}: {e}", path.display()), None)
                        }
                    }
                }
                (None, Some(name)) => {
                    let Some(alg) = &r.algorithm else {
                        self.error(
                            name,
                            format!("key {:?} has no algorithm", name.get_ref()),
                            Some(algorithms),
                        );
                        continue;
                    };
                    let what = format!("key {:?}", name.get_ref());
                    if r.secret_env.is_none() && r.secret_file.is_none() {
                        self.error(
                            name,
                            format!("{what} has no secret"),
                            Some(
                                "give secret_env or secret_file (base64, as tsig-keygen writes it)",
                            ),
                        );
                        continue;
                    }
                    let Some(secret) =
                        self.secret(r.secret_env.as_ref(), r.secret_file.as_ref(), &what)
                    else {
                        continue;
                    };
                    found.push((name.get_ref().clone(), alg.get_ref().clone(), secret, alg));
                }
                (Some(f), Some(_)) => self.error(
                    f,
                    "give a key's name, algorithm and secret, or a bind_file, not both",
                    None,
                ),
                (None, None) => self.error(
                    table,
                    "a [[key]] needs a name, an algorithm and a secret, or a bind_file",
                    None,
                ),
            }
            for (name, alg, secret, at) in found {
                let Some(algorithm) = Algorithm::from_name(&alg) else {
                    self.error(
                        at,
                        format!("key {name:?}: unknown algorithm {alg:?}"),
                        Some(algorithms),
                    );
                    continue;
                };
                let name = match crate::dns::name::Name::parse(
                    &name,
                    Some(&crate::dns::name::Name::root()),
                ) {
                    Ok(n) => n,
                    Err(e) => {
                        self.error(at, format!("invalid key name {name:?}: {e}"), None);
                        continue;
                    }
                };
                let secret = match base64::engine::general_purpose::STANDARD.decode(secret.trim()) {
                    Ok(s) if !s.is_empty() => s,
                    _ => {
                        self.error(at, format!("key {name}: the secret is not base64"), None);
                        continue;
                    }
                };
                if keys.iter().any(|k| k.name == name.to_lowercase()) {
                    self.error(at, format!("key {name} is defined twice"), None);
                    continue;
                }
                keys.push(Key::new(&name, algorithm, &secret));
            }
        }
        keys
    }

    /// `[server.cookies]`: the secret (inline, from the environment or from a file) and the
    /// secrets also accepted during a rollover, each 16 bytes in hex.
    fn cookies(&mut self, table: &Spanned<RawCookies>) -> Option<crate::dns::cookie::CookieKeys> {
        let raw = table.get_ref();
        let hint = "16 bytes as 32 hex digits, e.g. from `openssl rand -hex 16`";
        let key = |v: &str| -> Option<[u8; 16]> {
            let v = v.trim();
            if v.len() != 32 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let mut out = [0u8; 16];
            for (i, o) in out.iter_mut().enumerate() {
                *o = u8::from_str_radix(&v[2 * i..2 * i + 2], 16).ok()?;
            }
            Some(out)
        };
        let given = [&raw.secret, &raw.secret_env, &raw.secret_file];
        if given.iter().filter(|g| g.is_some()).count() != 1 {
            let at = given.iter().copied().flatten().nth(1);
            match at {
                Some(at) => self.error(at, "give one of secret, secret_env and secret_file", None),
                None => self.error(
                    table,
                    "[server.cookies] needs a secret: secret, secret_env or secret_file",
                    Some(hint),
                ),
            }
            return None;
        }
        let (text, at) = match (&raw.secret, &raw.secret_env, &raw.secret_file) {
            (Some(s), _, _) => (Some(s.get_ref().clone()), s),
            (_, Some(e), _) => (self.secret(Some(e), None, "cookie secret_env"), e),
            (_, _, Some(f)) => (self.secret(None, Some(f), "cookie secret_file"), f),
            _ => unreachable!("exactly one is given"),
        };
        let Some(secret) = key(&text?) else {
            self.error(at, "the cookie secret is not 32 hex digits", Some(hint));
            return None;
        };
        let mut accept = Vec::new();
        if let Some(list) = &raw.accept {
            if list.get_ref().len() > 4 {
                self.error(list, "accept lists at most 4 secrets", None);
            }
            for a in list.get_ref() {
                match key(a.get_ref()) {
                    Some(k) if k == secret => {
                        self.error(a, "this is the secret itself", None);
                    }
                    Some(k) => accept.push(k),
                    None => self.error(a, "an accepted secret is not 32 hex digits", Some(hint)),
                }
            }
        }
        Some(crate::dns::cookie::CookieKeys { secret, accept: accept.into() })
    }

    pub(super) fn zones(
        &mut self,
        raw: Vec<RawZone>,
        keys: &[crate::dns::tsig::Key],
    ) -> Vec<ZoneConfig> {
        let dir = self.path.parent().unwrap_or(Path::new(""));
        let mut zones = Vec::new();
        let mut seen: HashMap<Name, Loc> = HashMap::new();
        for z in raw {
            let mut text = z.name.get_ref().trim().to_string();
            if !text.ends_with('.') {
                text.push('.'); // zone names in the configuration are always absolute
            }
            let name = match Name::parse(&text, None) {
                Ok(n) => n.to_lowercase(),
                Err(e) => {
                    self.error(
                        &z.name,
                        format!("invalid zone name {:?}: {e}", z.name.get_ref()),
                        None,
                    );
                    continue;
                }
            };
            let here = self.loc(&z.name);
            if let Some(first) = seen.get(&name) {
                let hint = format!("the first definition is at {first}");
                self.error(&z.name, format!("zone {name} is defined twice"), Some(&hint));
                continue;
            }
            seen.insert(name.clone(), here);
            if z.file.get_ref().is_empty() {
                self.error(&z.file, "zone file path is empty", None);
                continue;
            }
            let transfer = self.transfer(&z, keys);
            let secondary = self.secondary(&z, keys);
            zones.push(ZoneConfig {
                name,
                file: dir.join(z.file.get_ref()),
                file_loc: self.loc(&z.file),
                transfer,
                secondary,
            });
        }
        if zones.is_empty() && self.diags.is_empty() {
            self.diags.push(
                Diagnostic::new(Loc::new(self.path, 1, 1), "no zones are configured")
                    .with_hint("add a [[zone]] table with name and file"),
            );
        }
        zones
    }
}

impl Validator<'_> {
    pub(super) fn profiles(
        &mut self,
        raw: Vec<RawProfile>,
        zones: &[ZoneConfig],
        have_geoip: bool,
    ) -> Vec<ProfileConfig> {
        // Names first, so that nested endpoints can refer to profiles defined later.
        let mut names: Vec<Option<Name>> = Vec::with_capacity(raw.len());
        let mut seen: HashMap<Name, Loc> = HashMap::new();
        for rp in &raw {
            let name = match resolve_name(rp.name.get_ref(), zones) {
                Ok(n) => n,
                Err(e) => {
                    self.error(&rp.name, e.0, e.1.as_deref());
                    names.push(None);
                    continue;
                }
            };
            let zone =
                zones.iter().filter(|z| name.is_within(&z.name)).max_by_key(|z| z.name.len());
            match zone {
                None => {
                    let served: Vec<String> = zones.iter().map(|z| z.name.to_string()).collect();
                    let hint = format!("served zones: {}", served.join(", "));
                    self.error(
                        &rp.name,
                        format!("profile {name} is not inside a served zone"),
                        Some(&hint),
                    );
                }
                Some(z) if z.name == name => {
                    self.error(
                        &rp.name,
                        format!("profile {name} is a zone apex"),
                        Some("a traffic-managed name must be below the apex, e.g. www"),
                    );
                }
                Some(_) => {}
            }
            if let Some(first) = seen.get(&name) {
                let hint = format!("the first definition is at {first}");
                self.error(&rp.name, format!("profile {name} is defined twice"), Some(&hint));
            } else {
                seen.insert(name.clone(), self.loc(&rp.name));
            }
            names.push(Some(name));
        }

        let mut out = Vec::with_capacity(raw.len());
        let mut children: Vec<Vec<(usize, Spanned<String>)>> = Vec::with_capacity(raw.len());
        for (i, rp) in raw.into_iter().enumerate() {
            let (profile, kids) = self.profile(rp, names[i].clone(), &names, zones, have_geoip);
            out.push(profile);
            children.push(kids);
        }
        self.check_nesting(&out, &children);
        out
    }

    fn profile(
        &mut self,
        rp: RawProfile,
        name: Option<Name>,
        names: &[Option<Name>],
        zones: &[ZoneConfig],
        have_geoip: bool,
    ) -> (ProfileConfig, Vec<(usize, Spanned<String>)>) {
        let loc = self.loc(&rp.name);
        let method = match Method::parse(rp.method.get_ref()) {
            Some(m) => m,
            None => {
                let hint = format!("one of: {}", Method::NAMES.join(", "));
                self.error(
                    &rp.method,
                    format!("unknown routing method {:?}", rp.method.get_ref()),
                    Some(&hint),
                );
                Method::Priority
            }
        };
        if method.uses_geo() && !have_geoip {
            self.error(
                &rp.method,
                format!("{} routing needs a GeoIP database", method.as_str()),
                Some("add [geoip] database = \"geoip/demo.mmdb\" (see README.md, GeoIP)"),
            );
        }
        let ttl = self.int_in(rp.ttl, "ttl", (0, i32::MAX as i64), 60) as u32;
        if let (Some(m), false) = (&rp.max_answers, method == Method::MultiValue) {
            self.error(m, "max_answers only applies to multivalue profiles", None);
        }
        let max_answers = self.int_in(rp.max_answers, "max_answers", (1, 10), 10) as u8;
        let sticky = match &rp.sticky {
            None => false,
            Some(s) if s.get_ref() == "client-subnet" && method == Method::Weighted => true,
            Some(s) if s.get_ref() == "client-subnet" => {
                self.error(s, "sticky only applies to weighted profiles", None);
                false
            }
            Some(s) => {
                self.error(
                    s,
                    format!("unknown sticky mode {:?}", s.get_ref()),
                    Some("the only mode is \"client-subnet\""),
                );
                false
            }
        };
        let when_all_down = match rp.when_all_down.as_ref().map(|s| (s, s.get_ref().as_str())) {
            None | Some((_, "serve-all")) => AllDown::ServeAll,
            Some((_, "nodata")) => AllDown::NoData,
            Some((_, "servfail")) => AllDown::ServFail,
            Some((s, other)) => {
                self.error(
                    s,
                    format!("unknown when_all_down {other:?}"),
                    Some("one of: serve-all, nodata, servfail"),
                );
                AllDown::ServeAll
            }
        };
        if rp.endpoints.is_empty() {
            self.error(
                &rp.name,
                "profile has no endpoints",
                Some("add [[profile.endpoint]] tables after it"),
            );
        }

        let mut views: Vec<ViewConfig> = Vec::new();
        for rv in &rp.views {
            if views.iter().any(|v| &v.name == rv.name.get_ref()) {
                self.error(
                    &rv.name,
                    format!("view {:?} is defined twice", rv.name.get_ref()),
                    None,
                );
            }
            let mut networks = Vec::new();
            for text in rv.networks.get_ref() {
                match geo::mmdb::parse_cidr(text.get_ref()) {
                    Ok((addr, prefix)) => {
                        let c = Cidr { addr, prefix };
                        let clash = views
                            .iter()
                            .flat_map(|v| v.networks.iter())
                            .chain(networks.iter())
                            .find(|o| {
                                Cidr { addr: o.addr, prefix: o.prefix.min(c.prefix) }
                                    .contains(c.addr)
                            });
                        if let Some(o) = clash {
                            self.error(
                                text,
                                format!("view network {c} overlaps {o}"),
                                Some("a client belongs to one view"),
                            );
                        }
                        networks.push(c);
                    }
                    Err(e) => self.error(text, e, None),
                }
            }
            if networks.is_empty() {
                self.error(&rv.networks, "a view needs at least one network", None);
            }
            views.push(ViewConfig { name: rv.name.get_ref().clone(), networks });
        }
        let mut endpoints = Vec::with_capacity(rp.endpoints.len());
        let mut load_rejected: Vec<String> = Vec::new();
        let mut kids = Vec::new();
        let mut endpoint_names: HashMap<String, ()> = HashMap::new();
        let mut priorities: HashMap<u32, String> = HashMap::new();
        let mut regions: HashMap<Region, String> = HashMap::new();
        let mut subnets: Vec<(Cidr, String)> = Vec::new();
        for (pos, re) in rp.endpoints.into_iter().enumerate() {
            let ename = re.name.get_ref().clone();
            if ename.is_empty() || endpoint_names.insert(ename.clone(), ()).is_some() {
                self.error(
                    &re.name,
                    format!("endpoint name {ename:?} is empty or used twice in this profile"),
                    None,
                );
            }
            let given = [re.address.is_some(), re.cname.is_some(), re.profile.is_some()];
            let target = match (re.address, re.cname, re.profile) {
                (Some(a), None, None) => TargetConfig::Addresses(self.addresses(&a)),
                (None, Some(c), None) => {
                    let text = c.get_ref().trim_end_matches('.').to_string() + ".";
                    match Name::parse(&text, None) {
                        Ok(n) => TargetConfig::Cname(n),
                        Err(e) => {
                            self.error(&c, format!("invalid cname {:?}: {e}", c.get_ref()), None);
                            TargetConfig::Addresses(Vec::new())
                        }
                    }
                }
                (None, None, Some(pr)) => {
                    let target = resolve_name(pr.get_ref(), zones).ok();
                    match target.and_then(|t| names.iter().position(|n| n.as_ref() == Some(&t))) {
                        Some(idx) => {
                            kids.push((idx, pr.clone()));
                            TargetConfig::Profile(idx)
                        }
                        None => {
                            self.error(
                                &pr,
                                format!("nested profile {:?} is not defined", pr.get_ref()),
                                Some("define it with its own [[profile]] table"),
                            );
                            TargetConfig::Addresses(Vec::new())
                        }
                    }
                }
                _ => {
                    let n = given.iter().filter(|g| **g).count();
                    self.error(&re.name, format!("endpoint {ename:?} needs exactly one of address, cname, profile ({n} given)"), None);
                    TargetConfig::Addresses(Vec::new())
                }
            };
            if method == Method::MultiValue && !matches!(target, TargetConfig::Addresses(_)) {
                self.error(
                    &re.name,
                    format!("multivalue endpoint {ename:?} must be an address endpoint"),
                    Some("multivalue answers carry addresses only"),
                );
            }
            let priority =
                self.int_in(re.priority.clone(), "priority", (1, 1000), pos as i64 + 1) as u32;
            if method == Method::Priority
                && let Some(other) = priorities.insert(priority, ename.clone())
            {
                let msg = format!("priority {priority} is also {other:?}'s");
                let hint = Some("priorities are unique within a profile");
                match &re.priority {
                    Some(at) => self.error(at, msg, hint),
                    None => self.error(&re.name, msg, hint),
                }
            }
            let weight = self.int_in(re.weight, "weight", (1, 1000), 1) as u32;

            let mut eregions = Vec::new();
            if let Some(g) = &re.geo {
                if method != Method::Geographic {
                    self.error(g, "geo only applies to geographic profiles", None);
                }
                for code in g.get_ref() {
                    match Region::parse(code.get_ref()) {
                        Ok(r) => {
                            if let Some(other) = regions.insert(r, ename.clone()) {
                                self.error(code, format!("region {r} is already mapped to {other:?}"), Some("a region code belongs to one endpoint"));
                            }
                            eregions.push(r);
                        }
                        Err(e) => self.error(code, e, Some("codes: WORLD, GEO-AF/AN/AP/AS/EU/ME/NA/SA, ISO countries (DE), subdivisions (US-WA)")),
                    }
                }
            }
            if method == Method::Geographic && eregions.is_empty() && re.geo.is_none() {
                self.error(
                    &re.name,
                    format!("geographic endpoint {ename:?} has no geo regions"),
                    Some("e.g. geo = [\"GEO-EU\"] or [\"WORLD\"]"),
                );
            }

            let location = re.location.as_ref().and_then(|l| self.location(l));
            if method == Method::Performance && location.is_none() && re.location.is_none() {
                self.error(
                    &re.name,
                    format!("performance endpoint {ename:?} has no location"),
                    Some("location = \"westeurope\" or [52.37, 4.90]"),
                );
            }

            let mut esubnets = Vec::new();
            if let Some(list) = &re.subnets {
                if method != Method::Subnet {
                    self.error(list, "subnets only apply to subnet profiles", None);
                }
                for text in list.get_ref() {
                    match geo::mmdb::parse_cidr(text.get_ref()) {
                        Ok((addr, prefix)) => {
                            let c = Cidr { addr, prefix };
                            let clash = subnets.iter().find(|(o, _)| {
                                let shorter = o.prefix.min(c.prefix);
                                Cidr { addr: o.addr, prefix: shorter }.contains(c.addr)
                            });
                            if let Some((o, owner)) = clash {
                                self.error(
                                    text,
                                    format!("subnet {c} overlaps {o} of {owner:?}"),
                                    Some("subnets within a profile must not overlap"),
                                );
                            }
                            subnets.push((c, ename.clone()));
                            esubnets.push(c);
                        }
                        Err(e) => self.error(text, e, None),
                    }
                }
            }

            let nested = matches!(target, TargetConfig::Profile(_));
            for (v, key) in [
                (&re.min_child_endpoints, "min_child_endpoints"),
                (&re.min_child_ipv4, "min_child_ipv4"),
                (&re.min_child_ipv6, "min_child_ipv6"),
            ] {
                if let (Some(v), false) = (v, nested) {
                    self.error(v, format!("{key} only applies to nested profile endpoints"), None);
                }
            }
            let min_child_endpoints =
                self.int_in(re.min_child_endpoints, "min_child_endpoints", (1, 1000), 1) as u32;
            let min_child_ipv4 =
                self.int_in(re.min_child_ipv4, "min_child_ipv4", (0, 1000), 0) as u32;
            let min_child_ipv6 =
                self.int_in(re.min_child_ipv6, "min_child_ipv6", (0, 1000), 0) as u32;
            let monitor = match &target {
                // A nested profile's availability comes from its children, never a probe.
                TargetConfig::Profile(_) => {
                    if let Some(m) = &re.monitor {
                        self.error(m, "nested profile endpoints are not probed: their status comes from the child profile", None);
                    }
                    None
                }
                _ => self.monitor(rp.monitor.as_ref(), re.monitor.as_ref()),
            };
            // A load table that was rejected is remembered, so that the burst rule does not
            // report the same endpoint again as having no load source.
            let load = re.load.as_ref().and_then(|l| {
                let got = self.load(l);
                if got.is_none() {
                    load_rejected.push(re.name.get_ref().clone());
                }
                got
            });
            let mut view_addresses = Vec::new();
            if let Some(t) = &re.views {
                for (view, value) in t.get_ref() {
                    let Some(vi) = views.iter().position(|v| &v.name == view) else {
                        let known: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
                        let hint = format!(
                            "views of this profile: {}",
                            if known.is_empty() { "none".into() } else { known.join(", ") }
                        );
                        self.error(t, format!("endpoint {ename:?}: no view {view:?}"), Some(&hint));
                        continue;
                    };
                    let texts: Vec<&str> = match value {
                        toml::Value::String(a) => vec![a.as_str()],
                        toml::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
                        _ => Vec::new(),
                    };
                    let addrs: Vec<IpAddr> = texts.iter().filter_map(|a| a.parse().ok()).collect();
                    if addrs.is_empty() || addrs.len() != texts.len() {
                        self.error(
                            t,
                            format!("endpoint {ename:?}: view {view:?} needs IP addresses"),
                            Some("views = { internal = \"10.1.2.3\" }"),
                        );
                        continue;
                    }
                    view_addresses.push((vi, addrs));
                }
            }
            endpoints.push(EndpointConfig {
                name: ename,
                target,
                priority,
                weight,
                regions: eregions,
                location,
                subnets: esubnets,
                enabled: re.enabled.unwrap_or(true),
                min_child_endpoints,
                min_child_ipv4,
                min_child_ipv6,
                monitor,
                load,
                view_addresses,
            });
        }
        let burst = rp.burst.as_ref().and_then(|b| self.burst(b, &endpoints, &load_rejected, ttl));
        let profile = ProfileConfig {
            views,
            burst,
            name: name.unwrap_or_else(Name::root),
            loc,
            method,
            ttl,
            max_answers,
            sticky,
            when_all_down,
            endpoints,
        };
        (profile, kids)
    }

    fn addresses(&mut self, v: &Spanned<toml::Value>) -> Vec<IpAddr> {
        let texts: Vec<&str> = match v.get_ref() {
            toml::Value::String(s) => vec![s.as_str()],
            toml::Value::Array(a) if a.iter().all(|x| x.is_str()) && !a.is_empty() => {
                a.iter().filter_map(|x| x.as_str()).collect()
            }
            _ => {
                self.error(
                    v,
                    "address must be an IP address or a non-empty list of them",
                    Some("address = \"192.0.2.10\" or [\"192.0.2.10\", \"2001:db8::10\"]"),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for t in texts {
            match t.parse::<IpAddr>() {
                Ok(ip) if !out.contains(&ip) => out.push(ip),
                Ok(ip) => self.error(v, format!("address {ip} is listed twice"), None),
                Err(_) => self.error(v, format!("invalid IP address {t:?}"), None),
            }
        }
        out
    }

    fn location(&mut self, v: &Spanned<toml::Value>) -> Option<Location> {
        let num = |x: &toml::Value| x.as_float().or_else(|| x.as_integer().map(|i| i as f64));
        match v.get_ref() {
            toml::Value::String(s) => {
                let l = geo::known_location(s);
                if l.is_none() {
                    self.error(v, format!("unknown location {s:?}"), Some("an Azure region name (westeurope, eastus...), a country code, or [latitude, longitude]"));
                }
                l
            }
            toml::Value::Array(a) if a.len() == 2 => match (num(&a[0]), num(&a[1])) {
                (Some(lat), Some(lon))
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    Some(Location { lat, lon })
                }
                _ => {
                    self.error(v, "location must be [latitude, longitude] in degrees", None);
                    None
                }
            },
            _ => {
                self.error(v, "location must be a region name or [latitude, longitude]", None);
                None
            }
        }
    }

    /// Nested profiles: no loops, at most MAX_DEPTH levels.
    fn check_nesting(
        &mut self,
        profiles: &[ProfileConfig],
        children: &[Vec<(usize, Spanned<String>)>],
    ) {
        fn depth(
            i: usize,
            children: &[Vec<(usize, Spanned<String>)>],
            stack: &mut Vec<usize>,
        ) -> Result<usize, Vec<usize>> {
            if let Some(pos) = stack.iter().position(|&s| s == i) {
                return Err(stack[pos..].to_vec());
            }
            stack.push(i);
            let mut d = 1;
            for (c, _) in &children[i] {
                d = d.max(1 + depth(*c, children, stack)?);
            }
            stack.pop();
            Ok(d)
        }
        for (i, kids) in children.iter().enumerate() {
            for (c, at) in kids {
                let mut stack = vec![i];
                match depth(*c, children, &mut stack) {
                    Err(cycle) => {
                        let path: Vec<String> = cycle
                            .iter()
                            .chain(std::iter::once(&cycle[0]))
                            .map(|&k| profiles[k].name.to_string())
                            .collect();
                        self.error(
                            at,
                            format!("nested profiles form a loop: {}", path.join(" -> ")),
                            None,
                        );
                    }
                    Ok(d) if d + 1 > MAX_DEPTH => {
                        self.error(
                            at,
                            format!(
                                "profiles are nested {} levels deep; the limit is {MAX_DEPTH}",
                                d + 1
                            ),
                            None,
                        );
                    }
                    Ok(_) => {}
                }
            }
        }
    }
}

impl Validator<'_> {
    pub(super) fn admin(&mut self, raw: Option<RawAdmin>) -> AdminConfig {
        let default_listen: SocketAddr = "127.0.0.1:8053".parse().expect("valid");
        let Some(raw) = raw else {
            return AdminConfig { listen: Some(default_listen), token: None, tls: None };
        };
        let listen = match (&raw.listen, raw.enabled) {
            (_, Some(false)) => None,
            (None, _) => Some(default_listen),
            (Some(l), _) => match l.get_ref().parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    self.error(
                        l,
                        format!("invalid admin listen address {:?}", l.get_ref()),
                        Some("write IP:PORT, e.g. \"127.0.0.1:8053\""),
                    );
                    None
                }
            },
        };
        let token = match (&raw.token, &raw.token_env) {
            (Some(t), None) if t.get_ref().len() < 16 => {
                self.error(
                    t,
                    "the admin token is shorter than 16 characters",
                    Some("use a long random string, e.g. from `openssl rand -hex 24`"),
                );
                None
            }
            (Some(t), None) => Some(t.get_ref().clone()),
            (None, Some(var)) => match std::env::var(var.get_ref()) {
                Ok(v) if v.len() >= 16 => Some(v),
                Ok(_) => {
                    self.error(
                        var,
                        format!("the token in ${} is shorter than 16 characters", var.get_ref()),
                        None,
                    );
                    None
                }
                Err(_) => {
                    self.error(
                        var,
                        format!("environment variable {} is not set", var.get_ref()),
                        None,
                    );
                    None
                }
            },
            (Some(t), Some(_)) => {
                self.error(t, "give token or token_env, not both", None);
                None
            }
            // A mounted secret or a systemd credential.
            (None, None) => match &raw.token_file {
                Some(f) => match self.secret(None, Some(f), "admin token_file") {
                    Some(t) if t.len() >= 16 => Some(t),
                    Some(_) => {
                        self.error(
                            f,
                            "the token in token_file is shorter than 16 characters",
                            None,
                        );
                        None
                    }
                    None => None,
                },
                None => None,
            },
        };
        if let Some(f) = &raw.token_file
            && (raw.token.is_some() || raw.token_env.is_some())
        {
            self.error(f, "give one of token, token_env and token_file", None);
        }
        if let (Some(a), None, Some(l)) = (listen, &token, &raw.listen)
            && !a.ip().is_loopback()
            && self.diags.is_empty()
        {
            self.error(
                l,
                format!("the admin API on {a} is reachable from other machines but has no token"),
                Some("set token_env = \"MERIDIAN_ADMIN_TOKEN\" (or token = \"...\"), or listen on 127.0.0.1"),
            );
        }
        let tls = self.cert_and_key(raw.tls_cert.as_ref(), raw.tls_key.as_ref(), "admin", "tls");
        AdminConfig { listen, token, tls }
    }

    /// The endpoint's monitor: the profile's `monitor` table with the endpoint's own keys on
    /// top, `None` when neither gives one or the endpoint says `monitor = false`.
    fn monitor(
        &mut self,
        profile: Option<&Spanned<RawMonitor>>,
        endpoint: Option<&Spanned<EndpointMonitor>>,
    ) -> Option<MonitorConfig> {
        let base = profile.map(|p| p.get_ref().clone());
        let m = match (endpoint.map(|e| (e, e.get_ref())), base) {
            (Some((_, EndpointMonitor::Off)), _) => return None,
            (Some((e, EndpointMonitor::Inherit)), None) => {
                self.error(
                    e,
                    "monitor = true, but the profile has no monitor to inherit",
                    Some("add a [profile.monitor] table"),
                );
                return None;
            }
            (Some((_, EndpointMonitor::Inherit)), Some(b)) | (None, Some(b)) => b,
            (Some((_, EndpointMonitor::Table(t))), b) => (**t).clone().over(b.unwrap_or_default()),
            (None, None) => return None,
        };
        let protocol = match &m.protocol {
            None => Protocol::Http,
            Some(p) => match p.get_ref().to_ascii_lowercase().as_str() {
                "http" => Protocol::Http,
                "https" => Protocol::Https,
                "tcp" => Protocol::Tcp,
                _ => {
                    self.error(p, "monitor protocol must be \"http\", \"https\" or \"tcp\"", None);
                    Protocol::Http
                }
            },
        };
        let default_port = if protocol == Protocol::Https { 443 } else { 80 };
        let port = self.int_in(m.port, "monitor port", (1, 65535), default_port) as u16;
        let tolerated_failures =
            self.int_in(m.tolerated_failures, "monitor tolerated_failures", (0, 9), 3) as u32;
        let recover_after =
            self.int_in(m.recover_after, "monitor recover_after", (1, 10), 1) as u32;
        let interval = self
            .duration(m.interval.as_ref(), "monitor interval")
            .unwrap_or(Duration::from_secs(30));
        if interval < Duration::from_secs(1)
            && let Some(at) = &m.interval
        {
            self.error(at, format!("monitor interval {interval:?} is below 1s"), None);
        }
        // The default timeout is 10 s, or half the interval when that is shorter.
        let timeout = self
            .duration(m.timeout.as_ref(), "monitor timeout")
            .unwrap_or_else(|| Duration::from_secs(10).min(interval / 2));
        if (timeout >= interval || timeout < Duration::from_millis(100))
            && let Some(at) = m.timeout.as_ref().or(m.interval.as_ref())
        {
            self.error(
                at,
                format!(
                    "monitor timeout {timeout:?} must be at least 100ms and below the interval ({interval:?})"
                ),
                None,
            );
        }
        let path = match &m.path {
            None => "/".to_string(),
            Some(p)
                if p.get_ref().starts_with('/')
                    && !p.get_ref().contains(|c: char| c.is_control() || c == ' ') =>
            {
                p.get_ref().clone()
            }
            Some(p) => {
                self.error(
                    p,
                    format!(
                        "monitor path {:?} must start with / and contain no spaces or control characters",
                        p.get_ref()
                    ),
                    None,
                );
                "/".into()
            }
        };
        let mut expected_status = Vec::new();
        match &m.expected_status {
            None => expected_status.push((200, 299)),
            Some(list) if (1..=8).contains(&list.get_ref().len()) => {
                for item in list.get_ref() {
                    let r = item.get_ref();
                    let range = {
                        let (a, b) = r.split_once('-').unwrap_or((r, r));
                        match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
                            (Ok(a), Ok(b))
                                if (100..=599).contains(&a) && (a..=599).contains(&b) =>
                            {
                                Some((a, b))
                            }
                            _ => None,
                        }
                    };
                    match range {
                        Some(r) => expected_status.push(r),
                        None => self.error(
                            item,
                            format!("expected_status entry {r:?} is not a status range"),
                            Some("e.g. \"200-299\" or \"301\""),
                        ),
                    }
                }
            }
            Some(list) => self.error(
                list,
                "expected_status must be a list of 1 to 8 ranges",
                Some("e.g. [\"200-299\", \"301-302\"]"),
            ),
        }
        let mut headers = Vec::new();
        if let Some(h) = &m.headers {
            if h.get_ref().len() > 8 {
                self.error(h, "a monitor sends at most 8 headers", None);
            }
            for (k, v) in h.get_ref() {
                let ok_name = !k.is_empty()
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                if ok_name && !v.get_ref().contains(['\r', '\n']) {
                    headers.push((k.clone(), v.get_ref().clone()));
                } else {
                    self.error(v, format!("monitor header {k:?} is not a valid header"), None);
                }
            }
        }
        let verify_tls = m.verify_tls.as_ref().is_some_and(|b| *b.get_ref());
        let consensus = match &m.consensus {
            None => false,
            Some(c) if c.get_ref() == "none" => false,
            Some(c) if c.get_ref() == "prometheus" => {
                if !self.fleet_declared {
                    self.error(
                        c,
                        "consensus = \"prometheus\" needs the fleet's Prometheus",
                        Some("add [fleet] with prometheus = \"http://prometheus:9090\""),
                    );
                }
                true
            }
            Some(c) => {
                self.error(
                    c,
                    format!("unknown monitor consensus {:?}", c.get_ref()),
                    Some("\"prometheus\" (the fleet's probe results decide) or \"none\""),
                );
                false
            }
        };
        Some(MonitorConfig {
            protocol,
            port,
            path,
            interval,
            timeout,
            tolerated_failures,
            recover_after,
            expected_status,
            headers,
            verify_tls,
            consensus,
        })
    }

    /// A fleet's `match`: PromQL label matchers, without braces (they go inside a selector).
    fn matchers(&mut self, m: Option<&Spanned<String>>) -> String {
        let Some(m) = m else { return String::new() };
        let text = m.get_ref().trim().to_string();
        if text.contains(['{', '}']) {
            self.error(m, "fleet match holds label matchers only, e.g. 'job=\"meridian\"'", None);
        }
        text
    }

    /// `[fleet]`.
    pub(super) fn fleet_shared(
        &mut self,
        raw: Option<&Spanned<RawFleetShared>>,
    ) -> Option<FleetShared> {
        let f = raw?.get_ref();
        let url = self.call_url(&f.prometheus, "fleet prometheus", "\"http://prometheus:9090\"");
        let client = self.client(f.client.as_ref(), "fleet prometheus");
        let matchers = self.matchers(f.matchers.as_ref());
        let lag = self.duration(f.lag.as_ref(), "fleet lag").unwrap_or(Duration::from_secs(5));
        if lag > Duration::from_secs(60)
            && let Some(l) = &f.lag
        {
            self.error(l, "fleet lag must be at most 1m", None);
        }
        Some(FleetShared { url: url?, client, matchers, lag })
    }

    /// A duration-valued key, reported at its value when it is not one.
    fn duration(&mut self, v: Option<&Spanned<String>>, key: &str) -> Option<Duration> {
        let v = v?;
        match parse_duration(v.get_ref()) {
            Some(d) => Some(d),
            None => {
                self.error(
                    v,
                    format!("{key} = {:?} is not a duration", v.get_ref()),
                    Some("a number and a unit: \"500ms\", \"30s\", \"5m\", \"1h\""),
                );
                None
            }
        }
    }
}

impl Validator<'_> {
    fn load(&mut self, at: &Spanned<RawLoad>) -> Option<LoadConfig> {
        let t = at.get_ref();
        let capacity = match &t.capacity {
            Some(c) if *c.get_ref() > 0.0 && c.get_ref().is_finite() => *c.get_ref(),
            Some(c) => {
                self.error(c, "load capacity must be a positive number", None);
                return None;
            }
            None => {
                self.error(at, "load needs a capacity: the raw value that means 100% utilisation (a positive number)", None);
                return None;
            }
        };
        // A half-life may be anything (0 = no smoothing); polling faster than 10 times a
        // second, or calling a value stale sooner, is a mistake.
        let dur = |v: &mut Self, at: &Option<Spanned<String>>, k: &str, default: u64| {
            let min = if k == "half_life" { Duration::ZERO } else { Duration::from_millis(100) };
            match v.duration(at.as_ref(), &format!("load {k}")) {
                None => Duration::from_secs(default),
                Some(d) if d >= min => d,
                Some(d) => {
                    if let Some(at) = at {
                        v.error(at, format!("load {k} = {d:?} is below {min:?}"), None);
                    }
                    Duration::from_secs(default)
                }
            }
        };
        let interval = dur(self, &t.interval, "interval", 10);
        let half_life = dur(self, &t.half_life, "half_life", 30);
        let stale_after = dur(self, &t.stale_after, "stale_after", 60);
        let url = |v: &mut Self, example: &str| -> Option<String> {
            let Some(u) = &t.url else {
                v.error(&t.source, format!("this load source needs url = \"{example}\""), None);
                return None;
            };
            v.call_url(u, "load", example)
        };
        let source = match t.source.get_ref().as_str() {
            "push" => LoadSource::Push,
            "http" => {
                let url = url(self, "http://app:8080/stats");
                let pointer = t.json_pointer.as_ref().map(|p| p.get_ref().clone());
                let metric = t.metric.as_ref().map(|m| m.get_ref().clone());
                if pointer.is_some() == metric.is_some() {
                    self.error(
                        &t.source,
                        "an http load source needs exactly one of json_pointer or metric",
                        Some(
                            "json_pointer = \"/load/rps\" or metric = \"http_requests_per_second\"",
                        ),
                    );
                    return None;
                }
                let labels = t.labels.clone().unwrap_or_default().into_iter().collect();
                LoadSource::Http { url: url?, json_pointer: pointer, metric, labels }
            }
            "prometheus" => {
                let url = url(self, "http://prometheus:9090");
                let Some(query) = &t.query else {
                    self.error(&t.source, "a prometheus load source needs query = \"...\"", None);
                    return None;
                };
                LoadSource::Prometheus { url: url?, query: query.get_ref().clone() }
            }
            _ => {
                self.error(
                    &t.source,
                    "load source must be \"push\", \"http\" or \"prometheus\"",
                    None,
                );
                return None;
            }
        };
        if stale_after <= interval && source != LoadSource::Push {
            self.error(at, format!("load stale_after ({stale_after:?}) must be longer than the interval ({interval:?})"), None);
        }
        let client = self.client(t.client.as_ref(), "load");
        Some(LoadConfig { source, client, capacity, interval, half_life, stale_after })
    }

    fn burst(
        &mut self,
        at: &Spanned<RawBurst>,
        endpoints: &[EndpointConfig],
        load_rejected: &[String],
        ttl: u32,
    ) -> Option<BurstConfig> {
        let t = at.get_ref();
        let group = |v: &mut Self, names: &Spanned<OneOrMany>, key: &str| -> Vec<usize> {
            if names.get_ref().0.is_empty() {
                v.error(names, format!("burst {key} must name one or more endpoints"), None);
            }
            names
                .get_ref()
                .0
                .iter()
                .filter_map(|n| match endpoints.iter().position(|e| &e.name == n) {
                    Some(i) => Some(i),
                    None => {
                        let known: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
                        v.error(
                            names,
                            format!("burst {key}: no endpoint {n:?}"),
                            Some(&format!("endpoints: {}", known.join(", "))),
                        );
                        None
                    }
                })
                .collect()
        };
        let primary = group(self, &t.primary, "primary");
        let overflow = group(self, &t.overflow, "overflow");
        if primary.iter().any(|p| overflow.contains(p)) {
            self.error(&t.overflow, "an endpoint cannot be both primary and overflow", None);
        }
        // An endpoint whose load table was already reported is not reported again here.
        if primary
            .iter()
            .any(|&i| endpoints[i].load.is_none() && !load_rejected.contains(&endpoints[i].name))
        {
            self.error(
                &t.primary,
                "every primary endpoint needs a load source",
                Some("add [profile.endpoint.load] to it"),
            );
        }
        let num = |v: &mut Self, x: &Spanned<f64>, key: &str| -> f64 {
            if (0.0..=10.0).contains(x.get_ref()) {
                *x.get_ref()
            } else {
                v.error(x, format!("burst {key} must be a utilisation such as 0.8"), None);
                0.0
            }
        };
        let (warm_at, burst_at, release_at) = (
            num(self, &t.warm_at, "warm_at"),
            num(self, &t.burst_at, "burst_at"),
            num(self, &t.release_at, "release_at"),
        );
        let opt = |v: &mut Self, x: &Option<Spanned<f64>>, key: &str, default: f64| {
            x.as_ref().map_or(default, |x| num(v, x, key))
        };
        let target = opt(self, &t.target, "target", (burst_at + release_at) / 2.0);
        let max_step = opt(self, &t.max_step, "max_step", 0.1);
        let max_share = opt(self, &t.max_share, "max_share", 1.0);
        if !(warm_at < burst_at
            && release_at < burst_at
            && release_at < target
            && target <= burst_at)
        {
            self.error(
                at,
                {
                    // Rounded: a derived target such as 0.85 must not print as 0.8500000000000001.
                    let r = |x: f64| (x * 1e4).round() / 1e4;
                    format!(
                        "burst thresholds are inconsistent: warm_at {}, burst_at {}, release_at {}, target {}",
                        r(warm_at),
                        r(burst_at),
                        r(release_at),
                        r(target)
                    )
                },
                Some("need warm_at < burst_at, release_at < target <= burst_at"),
            );
        }
        if !(max_step > 0.0 && max_step <= 1.0 && max_share > 0.0 && max_share <= 1.0) {
            self.error(at, "burst max_step and max_share must be in (0, 1]", None);
        }
        let sustain =
            self.duration(t.sustain.as_ref(), "burst sustain").unwrap_or(Duration::from_secs(30));
        let cooldown = self
            .duration(t.cooldown.as_ref(), "burst cooldown")
            .unwrap_or(Duration::from_secs(120));
        let interval =
            self.duration(t.interval.as_ref(), "burst interval").unwrap_or(Duration::from_secs(5));
        if interval < Duration::from_millis(100)
            && let Some(i) = &t.interval
        {
            self.error(i, "burst interval must be at least 100ms", None);
        }
        let sticky = match &t.sticky {
            None => false,
            Some(s) if s.get_ref() == "client-subnet" => true,
            Some(s) => {
                self.error(
                    s,
                    format!("unknown burst sticky mode {:?}", s.get_ref()),
                    Some("the only mode is \"client-subnet\""),
                );
                false
            }
        };
        let transition_ttl = t
            .transition_ttl
            .clone()
            .map(|x| self.int_in(Some(x), "burst transition_ttl", (0, i32::MAX as i64), 0) as u32);
        let hook = |v: &mut Self, h: &Option<Spanned<RawHook>>, key: &str| -> Option<Hook> {
            let at = h.as_ref()?;
            let h = at.get_ref();
            let secret = match (&h.secret, &h.secret_env) {
                (Some(s), None) => Some(s.get_ref().clone()),
                (None, Some(var)) => match std::env::var(var.get_ref()) {
                    Ok(s) => Some(s),
                    Err(_) => {
                        v.error(
                            var,
                            format!(
                                "burst {key}: environment variable {} is not set",
                                var.get_ref()
                            ),
                            None,
                        );
                        None
                    }
                },
                (Some(s), Some(_)) => {
                    v.error(s, format!("burst {key}: secret and secret_env are exclusive"), None);
                    None
                }
                (None, None) => None,
            };
            match (&h.url, &h.exec) {
                (Some(url), None) => {
                    let what = format!("burst {key}");
                    let url =
                        v.call_url(url, &what, "\"https://func.azurewebsites.net/api/start\"");
                    let client = v.client(h.client.as_ref(), &what);
                    Some(Hook::Http { url: url?, secret, client })
                }
                (None, Some(cmd)) if !cmd.get_ref().is_empty() => {
                    if let Some(s) = &h.secret {
                        v.error(s, format!("burst {key}: an exec hook is not signed; secret applies to url hooks"), None);
                    }
                    if let Some(c) = &h.client {
                        v.error(
                            c,
                            format!("burst {key}: client applies to url hooks, not exec"),
                            None,
                        );
                    }
                    Some(Hook::Exec { command: cmd.get_ref().clone() })
                }
                _ => {
                    v.error(at, format!("burst {key} needs url = \"https://...\" or exec = [\"command\", \"arg\"]"), None);
                    None
                }
            }
        };
        let on_warm = hook(self, &t.on_warm, "on_warm");
        let on_idle = hook(self, &t.on_idle, "on_idle");
        let warm_lead = t
            .warm_lead
            .as_ref()
            .and_then(|_| self.duration(t.warm_lead.as_ref(), "burst warm_lead"));
        // How fast the primary's reading follows its traffic: its load's smoothing, plus the
        // sampling interval of a polled source (the slowest primary sets it).
        let (half_life, settle) = primary
            .iter()
            .filter_map(|&i| endpoints[i].load.as_ref())
            .map(|l| {
                let sampling =
                    if l.source == LoadSource::Push { Duration::ZERO } else { l.interval };
                (l.half_life, l.half_life + sampling)
            })
            .fold((Duration::ZERO, Duration::ZERO), |a, b| (a.0.max(b.0), a.1.max(b.1)));
        let rule = crate::traffic::burst::Rule {
            warm_at,
            burst_at,
            release_at,
            target,
            sustain,
            cooldown,
            max_step,
            max_share,
            warm_lead,
            idle_ttl: Duration::from_secs(ttl as u64),
            ttl: Duration::from_secs(transition_ttl.unwrap_or(ttl) as u64),
            half_life,
            settle,
        };
        let fleet = t
            .fleet
            .as_ref()
            .and_then(|f| self.fleet(f, &rule, interval, &primary, &overflow, endpoints));
        Some(BurstConfig {
            primary,
            overflow,
            rule,
            interval,
            sticky,
            transition_ttl,
            on_warm,
            on_idle,
            fleet,
        })
    }

    /// `[profile.burst.fleet]`: every load the rule reads must come from one Prometheus, and
    /// the window must be long enough for a replay from Idle to reach a burst's steady state.
    fn fleet(
        &mut self,
        at: &Spanned<RawFleet>,
        rule: &crate::traffic::burst::Rule,
        interval: Duration,
        primary: &[usize],
        overflow: &[usize],
        endpoints: &[EndpointConfig],
    ) -> Option<FleetConfig> {
        let f = at.get_ref();
        let window =
            self.duration(f.window.as_ref(), "fleet window").unwrap_or(Duration::from_secs(600));
        let lag = self.duration(f.lag.as_ref(), "fleet lag").unwrap_or(Duration::from_secs(5));
        let least = 2 * (2 * rule.sustain + 2 * rule.cooldown) + rule.drain_wait();
        if window < least.max(interval * 10) {
            let shown = humantime::format_duration(least.max(interval * 10)).to_string();
            match &f.window {
                Some(w) => self.error(
                    w,
                    format!("fleet window is too short for this rule: at least {shown}"),
                    Some("2 × (2 × sustain + 2 × cooldown) + the longest TTL, and 10 intervals"),
                ),
                None => self.error(
                    at,
                    format!("the default fleet window (10m) is too short for this rule: set window to at least {shown}"),
                    None,
                ),
            }
        }
        // Prometheus answers at most 11,000 points per series.
        if window.as_secs_f64() / interval.as_secs_f64() > 10_000.0
            && let Some(w) = &f.window
        {
            self.error(w, "fleet window holds more than 10,000 burst intervals", None);
        }
        if lag > interval * 10
            && let Some(l) = &f.lag
        {
            self.error(l, "fleet lag must be at most 10 burst intervals", None);
        }
        let matchers = self.matchers(f.matchers.as_ref());
        // One Prometheus for everything the rule reads.
        let mut url: Option<(String, ClientConfig)> = None;
        for &i in primary.iter().chain(overflow.iter()) {
            let e = &endpoints[i];
            let Some(l) = &e.load else { continue };
            match &l.source {
                LoadSource::Prometheus { url: u, .. } => match &url {
                    None => url = Some((u.clone(), l.client.clone())),
                    Some((first, _)) if first != u => {
                        self.error(
                            at,
                            format!("fleet mode reads one Prometheus; endpoint {:?} queries {u}, another {first}", e.name),
                            None,
                        );
                        return None;
                    }
                    Some(_) => {}
                },
                _ => {
                    self.error(
                        at,
                        format!("fleet mode needs every burst endpoint's load from Prometheus; endpoint {:?} has another source", e.name),
                        Some("source = \"prometheus\": the store every instance shares"),
                    );
                    return None;
                }
            }
        }
        let (url, client) = url?;
        Some(FleetConfig { window, lag, matchers, url, client })
    }
}

fn resolve_name(text: &str, zones: &[ZoneConfig]) -> Result<Name, (String, Option<String>)> {
    let bad = |e: crate::dns::name::NameError| (format!("invalid name {text:?}: {e}"), None);
    if text.ends_with('.') {
        return Name::parse(text, None).map(|n| n.to_lowercase()).map_err(bad);
    }
    let absolute = Name::parse(&format!("{text}."), None).map_err(bad)?.to_lowercase();
    if zones.iter().any(|z| absolute.is_within(&z.name)) {
        return Ok(absolute);
    }
    match zones {
        [only] => Name::parse(text, Some(&only.name)).map(|n| n.to_lowercase()).map_err(bad),
        _ => Err((
            format!("{text:?} is not inside any served zone"),
            Some("write the name absolute, with a trailing dot".into()),
        )),
    }
}
