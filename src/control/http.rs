//! The HTTP client side: URLs, plain or TLS connections (with the operator's CA, client
//! certificate and credentials), and one request per connection, answers bounded in size.
//! Load sources and webhooks go through hyper ([`call`]). Health probes keep [`exchange`] on
//! the raw socket: a probe needs only the status line, returns as soon as it is in (a target
//! that streams a large or endless body costs nothing), and its timeout covers connect, TLS
//! and that line exactly. Callers bound both in time.

use crate::config::{Auth, ClientConfig};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest answer read when the body matters.
const MAX_ANSWER: usize = 1 << 20;
/// The most header bytes read when only the status matters.
const MAX_HEAD: usize = 16 * 1024;

/// An `http(s)://host[:port]/path` URL, split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// `host:port` to connect to (80 or 443 when none is given).
    pub connect: String,
    /// The `Host` header value, as written in the URL.
    pub host: String,
    /// The host name (or address) the server's certificate must name.
    pub name: String,
    /// Path and query.
    pub path: String,
}

pub fn parse_url(text: &str) -> Result<Url, String> {
    let u = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let https = match u.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(format!("{text:?}: the scheme {other:?} is not http or https")),
    };
    let name = match u.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err(format!("no host in {text:?}")),
    };
    let port = u.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    let bracketed = if name.contains(':') { format!("[{name}]") } else { name.clone() };
    let host = match u.port() {
        Some(p) => format!("{bracketed}:{p}"),
        None => bracketed.clone(),
    };
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    Ok(Url { https, connect: format!("{bracketed}:{port}"), host, name, path })
}

/// A connection to a URL's server: plain, or TLS.
#[allow(missing_debug_implementations)] // a TLS stream has no Debug
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS client configuration for `c`, built once per distinct setting (the files are read
/// then; a configuration reload that names other files builds another).
pub fn tls_for(c: &ClientConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    type Key = (Option<std::path::PathBuf>, Option<(std::path::PathBuf, std::path::PathBuf)>, bool);
    type Cache = Mutex<Vec<(Key, Arc<rustls::ClientConfig>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let key: Key = (c.ca_file.clone(), c.client_cert.clone(), c.verify_tls);
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some((_, cfg)) =
        cache.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|(k, _)| *k == key)
    {
        return Ok(cfg.clone());
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if c.verify_tls {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(ca) = &c.ca_file {
            let certs = CertificateDer::pem_file_iter(ca)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            for cert in certs {
                roots.add(cert).map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            }
        }
        builder.with_root_certificates(roots)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
    };
    let cfg = match &c.client_cert {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("client_cert {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("client_key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    let cfg = Arc::new(cfg);
    cache.lock().unwrap_or_else(|e| e.into_inner()).push((key, cfg.clone()));
    Ok(cfg)
}

/// Connects to `url`'s server, over TLS for `https://` as `client` says.
pub async fn connect_with(url: &Url, client: &ClientConfig) -> Result<Stream, String> {
    let tcp = connect(url).await?;
    if !url.https {
        return Ok(Stream::Plain(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(url.name.clone())
        .map_err(|e| format!("TLS: {:?} is not a server name: {e}", url.name))?;
    let connector = tokio_rustls::TlsConnector::from(tls_for(client)?);
    let tls =
        connector.connect(name, tcp).await.map_err(|e| format!("TLS with {}: {e}", url.host))?;
    Ok(Stream::Tls(Box::new(tls)))
}

/// The request headers `client` adds: credentials and custom headers.
pub fn client_headers(client: &ClientConfig) -> Vec<(String, String)> {
    use base64::Engine as _;
    let mut h = Vec::new();
    match &client.auth {
        Some(Auth::Bearer(t)) => h.push(("Authorization".into(), format!("Bearer {t}"))),
        Some(Auth::Basic { user, password }) => {
            let cred =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            h.push(("Authorization".into(), format!("Basic {cred}")));
        }
        None => {}
    }
    h.extend(client.headers.iter().cloned());
    h
}

/// One request to `url` over a fresh connection (HTTP/1.1, by hyper), as `client` says:
/// `headers` beside the client's own, `body` with its content type. Returns the status and
/// the body, read up to 1 MiB. Callers bound it in time.
pub async fn call(
    url: &Url,
    client: &ClientConfig,
    method: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Vec<u8>)>,
) -> Result<(u16, Vec<u8>), String> {
    use http_body_util::{BodyExt, Full, Limited};
    let stream = connect_with(url, client).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP with {}: {e}", url.host))?;
    // The connection is driven beside the request; it ends with it.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(url.path.as_str())
        .header("Host", url.host.as_str())
        .header("Connection", "close");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    for (k, v) in client_headers(client) {
        req = req.header(k, v);
    }
    let (content, payload) = match body {
        Some((ct, b)) => (Some(ct), b),
        None => (None, Vec::new()),
    };
    if let Some(ct) = content {
        req = req.header("Content-Type", ct);
    }
    let req = req
        .body(Full::new(hyper::body::Bytes::from(payload)))
        .map_err(|e| format!("the request cannot be built: {e}"))?;
    let resp =
        sender.send_request(req).await.map_err(|e| format!("HTTP with {}: {e}", url.host))?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("the answer from {}: {e}", url.host))?
        .to_bytes();
    Ok((status, body.to_vec()))
}

/// Accepts any server certificate (a probe asks "is it up", not "is it who it says"; an
/// operator's `verify_tls = false`), while still checking the handshake signatures so that
/// the TLS session itself is sound.
#[derive(Debug)]
pub struct AnyCertificate(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to `url`'s host.
pub async fn connect(url: &Url) -> Result<TcpStream, String> {
    TcpStream::connect(url.connect.as_str()).await.map_err(|e| format!("connect {}: {e}", url.host))
}

/// Sends `request` (head and body) and reads the answer: its status, and its body when
/// `want_body` (otherwise it returns as soon as the status line is in).
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
    want_body: bool,
) -> Result<(u16, Option<Vec<u8>>), String> {
    s.write_all(request).await.map_err(|e| format!("send: {e}"))?;
    let limit = if want_body { MAX_ANSWER } else { MAX_HEAD };
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await.map_err(|e| format!("receive: {e}"))?;
        buf.extend_from_slice(&chunk[..n]);
        if !want_body && let Some(code) = status_line(&buf) {
            return Ok((code, None));
        }
        if n == 0 {
            break;
        }
        if buf.len() > limit {
            return Err(if want_body {
                "answer over 1 MiB".into()
            } else {
                "response headers too large".into()
            });
        }
    }
    if buf.is_empty() {
        return Err("connection closed before a status line".into());
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(&buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err("invalid HTTP answer".into()),
    };
    let code = resp.code.unwrap_or(0);
    let chunked = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value).contains("chunked")
    });
    let body = &buf[head..];
    Ok((code, Some(if chunked { dechunk(body)? } else { body.to_vec() })))
}

/// The status code, once a whole status line has arrived.
fn status_line(buf: &[u8]) -> Option<u16> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[..end]).ok()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunked body")?;
        let size_text = String::from_utf8_lossy(&b[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or("truncated chunk")?);
        b = b.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_status_lines_and_chunks() {
        let u = parse_url("http://127.0.0.1:9090/api/v1/query?query=up").unwrap();
        assert_eq!(
            (u.connect.as_str(), u.host.as_str(), u.path.as_str()),
            ("127.0.0.1:9090", "127.0.0.1:9090", "/api/v1/query?query=up")
        );
        assert_eq!(parse_url("http://app.example.com").unwrap().connect, "app.example.com:80");
        let u = parse_url("https://func.example.net/api/start?code=a%2Bb").unwrap();
        assert!(u.https);
        assert_eq!(
            (u.connect.as_str(), u.name.as_str(), u.path.as_str()),
            ("func.example.net:443", "func.example.net", "/api/start?code=a%2Bb")
        );
        assert_eq!(parse_url("http://[::1]:8080/m").unwrap().connect, "[::1]:8080");
        assert!(parse_url("ftp://x/").is_err());
        let basic = ClientConfig {
            auth: Some(Auth::Basic { user: "Aladdin".into(), password: "open sesame".into() }),
            headers: vec![("x-functions-key".into(), "k".into())],
            ..ClientConfig::default()
        };
        assert_eq!(
            client_headers(&basic),
            [
                ("Authorization".to_string(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==".to_string()),
                ("x-functions-key".to_string(), "k".to_string())
            ]
        );
        assert_eq!(status_line(b"HTTP/1.1 503 Busy\r\n"), Some(503));
        assert_eq!(status_line(b"HTTP/1.1 503"), None);
        assert_eq!(status_line(b"SSH-2.0\r\n"), None);
        assert_eq!(dechunk(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n").unwrap(), b"Wikipedia");
    }
}
