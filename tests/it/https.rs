//! HTTPS for load sources and webhooks, against real local TLS servers with a test CA made by
//! the openssl command line: success, a wrong CA, an expired certificate, a name mismatch,
//! mTLS required; credentials and custom headers; and the configuration errors.

use crate::harness::*;
use meridian::config::{Auth, ClientConfig, LoadSource};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn openssl(dir: &Path, args: &[&str]) {
    run_in(dir, "openssl", args);
}

fn run_in(dir: &Path, cmd: &str, args: &[&str]) {
    let out = std::process::Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`NAME-ca.pem`, `NAME-ca.key`).
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A leaf certificate `NAME.pem`/`NAME.key` signed by CA `by`, for `san`, optionally made in
/// the past with faketime (so that it has expired).
fn leaf(dir: &Path, name: &str, by: &str, san: &str, past: bool) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n"),
    )
    .unwrap();
    let ca_pem = format!("{by}-ca.pem");
    let ca_key = format!("{by}-ca.key");
    let csr = format!("{name}.csr");
    let pem = format!("{name}.pem");
    let ext = format!("{name}.ext");
    let x509 = [
        "x509",
        "-req",
        "-in",
        csr.as_str(),
        "-CA",
        ca_pem.as_str(),
        "-CAkey",
        ca_key.as_str(),
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        pem.as_str(),
        "-extfile",
        ext.as_str(),
    ];
    if past {
        // Valid for a day, a year ago (the CA itself is backdated too by faketime's clock
        // only for this signature: its own validity does not matter to the leaf's expiry).
        let mut args = vec!["-f", "-400d", "openssl"];
        args.extend(x509);
        run_in(dir, "faketime", &args);
    } else {
        openssl(dir, &x509);
    }
}

/// Requests seen by a [`Server`]: the request head.
type Seen = Arc<Mutex<Vec<String>>>;

/// A TLS server on 127.0.0.1 with certificate `name`, answering 200 with `body`; with
/// `client_ca`, it requires a client certificate signed by that CA.
async fn server(
    dir: &Path,
    name: &str,
    client_ca: Option<&str>,
    body: &'static str,
) -> (u16, Seen) {
    let certs = CertificateDer::pem_file_iter(dir.join(format!("{name}.pem")))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(dir.join(format!("{ca}-ca.pem"))).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(certs, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (acceptor, seen) = (acceptor.clone(), s2.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut buf = vec![0u8; 16384];
                let mut n = 0;
                while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
                    match tls.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => n += k,
                    }
                }
                seen.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, seen)
}

struct Pki {
    dir: TempDir,
}

impl Pki {
    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }
}

fn pki() -> Pki {
    let dir = TempDir::new();
    let d = dir.path();
    ca(d, "test");
    ca(d, "other");
    leaf(d, "good", "test", "IP:127.0.0.1", false);
    leaf(d, "stranger", "other", "IP:127.0.0.1", false);
    leaf(d, "expired", "test", "IP:127.0.0.1", true);
    leaf(d, "misnamed", "test", "DNS:elsewhere.test", false);
    ca(d, "clients");
    leaf(d, "meridian", "clients", "DNS:meridian.test", false);
    Pki { dir }
}

const METRICS: &str = "# TYPE demo_rps gauge\ndemo_rps 42\n";

fn source(port: u16) -> LoadSource {
    LoadSource::Http {
        url: format!("https://127.0.0.1:{port}/metrics"),
        json_pointer: None,
        metric: Some("demo_rps".into()),
        labels: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_sources_and_webhooks_over_https() {
    use meridian::control::load::{fetch_value_with, post};
    let p = pki();
    let trust = ClientConfig { ca_file: Some(p.path("test-ca.pem")), ..ClientConfig::default() };

    // The server's certificate from the CA given: a sample, and the credentials and headers.
    let (port, seen) = server(p.dir.path(), "good", None, METRICS).await;
    let with_auth = ClientConfig {
        auth: Some(Auth::Bearer("s3cr3t-token".into())),
        headers: vec![("x-functions-key".into(), "fn-key-1".into())],
        ..trust.clone()
    };
    assert_eq!(fetch_value_with(&source(port), &with_auth).await, Ok(42.0));
    // (Header names are case-insensitive; hyper writes them in lower case.)
    let head = seen.lock().unwrap()[0].clone();
    assert!(head.contains("authorization: Bearer s3cr3t-token\r\n"), "{head}");
    assert!(head.contains("x-functions-key: fn-key-1\r\n"), "{head}");
    // Without the CA, the bundled web roots do not know it: refused, and the reason is said.
    let e = fetch_value_with(&source(port), &ClientConfig::default()).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // Verification off (an explicit opt-out): accepted.
    let off = ClientConfig { verify_tls: false, ..ClientConfig::default() };
    assert_eq!(fetch_value_with(&source(port), &off).await, Ok(42.0));
    // A webhook over HTTPS with basic credentials.
    let basic = ClientConfig {
        auth: Some(Auth::Basic { user: "meridian".into(), password: "pw".into() }),
        ..trust.clone()
    };
    let code =
        post(&format!("https://127.0.0.1:{port}/api/start"), "{}", Some("sha256=00"), &basic).await;
    assert_eq!(code, Ok(200));
    let head = seen.lock().unwrap().last().unwrap().clone();
    assert!(
        head.starts_with("POST /api/start HTTP/1.1\r\n")
            && head.contains("authorization: Basic bWVyaWRpYW46cHc=\r\n"),
        "{head}"
    );

    // A certificate from another CA, an expired one, one for another name: all refused.
    for (name, want) in [
        ("stranger", "UnknownIssuer"),
        ("expired", "certificate expired"),
        ("misnamed", "not valid for name"),
    ] {
        let (port, _) = server(p.dir.path(), name, None, METRICS).await;
        let e = fetch_value_with(&source(port), &trust).await.unwrap_err();
        assert!(e.contains(want), "{name}: {e}");
    }

    // mTLS: a server that requires a client certificate refuses us without one, and
    // serves us with ours.
    let (port, _) = server(p.dir.path(), "good", Some("clients"), METRICS).await;
    assert!(fetch_value_with(&source(port), &trust).await.is_err());
    let mtls = ClientConfig {
        client_cert: Some((p.path("meridian.pem"), p.path("meridian.key"))),
        ..trust.clone()
    };
    assert_eq!(fetch_value_with(&source(port), &mtls).await, Ok(42.0));
}

/// Clear configuration errors: a URL scheme that is not HTTP(S), a CA file that is not there,
/// a secret variable that is not set.
#[test]
fn https_configuration_errors() {
    let dir = TempDir::new();
    dir.write(
        "z.zone",
        "$TTL 60\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n",
    );
    dir.write(
        "meridian.toml",
        r#"[[zone]]
name = "example.test"
file = "z.zone"
[[profile]]
name = "www"
method = "priority"
[profile.burst]
primary = "a"
overflow = "b"
warm_at = 0.6
burst_at = 0.8
release_at = 0.4
[profile.burst.on_warm]
url = "ftp://func.example.net/start"
[profile.burst.on_idle]
url = "https://func.example.net/stop"
client = { ca_file = "no-such-ca.pem", bearer_token_env = "MERIDIAN_TEST_UNSET_TOKEN" }
[[profile.endpoint]]
name = "a"
address = "192.0.2.10"
[profile.endpoint.load]
source = "http"
url = "https://app.example.net/metrics"
metric = "rps"
capacity = 10
client = { basic_user = "meridian" }
[[profile.endpoint]]
name = "b"
address = "192.0.2.11"
"#,
    );
    let out = crate::cli::meridian()
        .args(["check", "-c", "meridian.toml"])
        .current_dir(dir.path())
        .env_remove("MERIDIAN_TEST_UNSET_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "meridian.toml:14:7: burst on_warm url \"ftp://func.example.net/start\": the scheme \"ftp\" is not http or https",
        "burst on_idle ca_file: cannot read certificates from",
        "no-such-ca.pem",
        "burst on_idle bearer token: environment variable MERIDIAN_TEST_UNSET_TOKEN is not set",
        "load: basic_user needs a password",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

/// The admin API over HTTPS: `[admin] tls_cert` and `tls_key`; a plain-HTTP request to it
/// gets no answer; a renewed certificate is served without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_over_https() {
    use meridian::control::load::get;
    let p = pki();
    let dir = TempDir::new();
    dir.write(
        "z.zone",
        "$TTL 60\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n",
    );
    std::fs::copy(p.path("good.pem"), dir.path().join("admin.pem")).unwrap();
    std::fs::copy(p.path("good.key"), dir.path().join("admin.key")).unwrap();
    let cfg = dir.write(
        "meridian.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[zone]]\nname = \"example.test\"\nfile = \"z.zone\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"admin.pem\"\ntls_key = \"admin.key\"\n",
    );
    let srv = TestServer::start_config(dir, cfg).await;
    let api = srv.running.as_ref().unwrap().admin_addr().unwrap();
    let trust = ClientConfig { ca_file: Some(p.path("test-ca.pem")), ..ClientConfig::default() };
    let body = get(&format!("https://{api}/healthz"), &trust).await.unwrap();
    assert!(body.contains("\"ok\""), "{body}");
    assert!(get(&format!("https://{api}/v1/status"), &trust).await.unwrap().contains("\"zones\""));
    // Plain HTTP to the TLS listener: no HTTP answer.
    assert!(get(&format!("http://{api}/healthz"), &ClientConfig::default()).await.is_err());
    // A certificate from another CA put in place (a renewal): the next connection gets it.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(p.path("stranger.pem"), srv.dir.path().join("admin.pem")).unwrap();
    std::fs::copy(p.path("stranger.key"), srv.dir.path().join("admin.key")).unwrap();
    let e = get(&format!("https://{api}/healthz"), &trust).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    let other = ClientConfig { ca_file: Some(p.path("other-ca.pem")), ..ClientConfig::default() };
    assert!(get(&format!("https://{api}/healthz"), &other).await.is_ok());
    srv.stop().await;
}
