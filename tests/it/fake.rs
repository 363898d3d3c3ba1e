//! Real endpoints for health tests: HTTP, HTTPS (self-signed) and TCP listeners on loopback
//! that a test can take down (connection refused), bring back, hang, or make answer with any
//! status code. Each records the requests it received.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// `mode` values: an HTTP status code, or one of these.
const HANG: u32 = 1;
/// TCP only: accept and close.
const ACCEPT: u32 = 2;

#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

struct Inner {
    mode: AtomicU32,
    /// Status codes for the next requests, in order, before `mode` applies again.
    script: Mutex<std::collections::VecDeque<u16>>,
    hits: AtomicU64,
    requests: Mutex<Vec<String>>,
    task: Mutex<Option<JoinHandle<()>>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Fake {
    /// An HTTP endpoint on `ip` (a loopback address) answering 200.
    pub async fn http(ip: &str) -> Fake {
        Fake::start_new(ip, 200, None).await
    }

    /// An HTTPS endpoint with a fresh self-signed certificate, answering 200.
    pub async fn https(ip: &str, dir: &Path) -> Fake {
        Fake::start_new(ip, 200, Some(self_signed(dir))).await
    }

    /// A TCP endpoint that accepts and closes.
    pub async fn tcp(ip: &str) -> Fake {
        Fake::start_new(ip, ACCEPT, None).await
    }

    async fn start_new(ip: &str, mode: u32, tls: Option<tokio_rustls::TlsAcceptor>) -> Fake {
        let addr = SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 0);
        let inner = Arc::new(Inner {
            mode: AtomicU32::new(mode),
            script: Mutex::default(),
            hits: AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            task: Mutex::new(None),
            tls,
        });
        let listener = bind(addr);
        let addr = listener.local_addr().unwrap();
        let f = Fake { addr, inner };
        f.serve(listener);
        f
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answers with this HTTP status from now on.
    pub fn set_status(&self, code: u16) {
        self.inner.mode.store(code as u32, Ordering::Relaxed);
    }

    /// Answers the next requests with these codes, one each, then as before: a target that
    /// fails exactly N times.
    pub fn script(&self, codes: &[u16]) {
        self.inner.script.lock().unwrap().extend(codes);
    }

    /// How many scripted answers are still to be given.
    pub fn script_left(&self) -> usize {
        self.inner.script.lock().unwrap().len()
    }

    /// Accepts connections and reads requests but never answers.
    pub fn hang(&self) {
        self.inner.mode.store(HANG, Ordering::Relaxed);
    }

    /// Closes the listener: connections are refused.
    pub fn stop(&self) {
        if let Some(t) = self.inner.task.lock().unwrap().take() {
            t.abort();
        }
    }

    /// Listens again on the same address.
    pub fn start(&self) {
        self.stop();
        self.serve(bind(self.addr));
    }

    /// Connections accepted so far.
    pub fn hits(&self) -> u64 {
        self.inner.hits.load(Ordering::Relaxed)
    }

    /// The request heads received so far.
    pub fn requests(&self) -> Vec<String> {
        self.inner.requests.lock().unwrap().clone()
    }

    fn serve(&self, listener: TcpListener) {
        let inner = self.inner.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                inner.hits.fetch_add(1, Ordering::Relaxed);
                let inner = inner.clone();
                tokio::spawn(async move {
                    if inner.mode.load(Ordering::Relaxed) == ACCEPT {
                        return; // dropped: accepted and closed
                    }
                    match &inner.tls {
                        Some(acceptor) => {
                            if let Ok(Ok(tls)) = tokio::time::timeout(
                                Duration::from_secs(5),
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                answer(tls, &inner).await;
                            }
                        }
                        None => answer(stream, &inner).await,
                    }
                });
            }
        });
        *self.inner.task.lock().unwrap() = Some(task);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }
}

fn bind(addr: SocketAddr) -> TcpListener {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&addr.into()).unwrap();
    s.listen(64).unwrap();
    s.set_nonblocking(true).unwrap();
    TcpListener::from_std(s.into()).unwrap()
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, inner: &Inner) {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf[len..])).await {
            Ok(Ok(n)) if n > 0 => len += n,
            _ => return,
        }
    }
    inner.requests.lock().unwrap().push(String::from_utf8_lossy(&buf[..len]).into_owned());
    let scripted = inner.script.lock().unwrap().pop_front().map(u32::from);
    match scripted.unwrap_or_else(|| inner.mode.load(Ordering::Relaxed)) {
        HANG => tokio::time::sleep(Duration::from_secs(30)).await,
        code => {
            let resp =
                format!("HTTP/1.1 {code} Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    }
}

/// A self-signed certificate from the openssl command line, as a TLS acceptor.
fn self_signed(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=meridian-test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(ok.success(), "openssl could not make a certificate");
    let certs = vec![CertificateDer::from_pem_file(&cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
