//! The admin HTTP API and Prometheus metrics.
//!
//! A deliberately small HTTP/1.1 server: one request per connection, headers and body size
//! limited, at most [`MAX_CONNECTIONS`] at once, the whole exchange bounded by a deadline, so
//! a slow or hostile client costs one task for a few seconds and nothing else. The routes
//! below are `ROUTES` in code: the one list. HTTP/1.1 is hyper's server. It changes
//! state only through endpoints' live objects (`live::EndpointLive`: overrides, pushed load)
//! and the reload channel.
//!
//! | route | |
//! | --- | --- |
//! | `GET /healthz` | liveness (no token needed) |
//! | `GET /readyz` | ready once configuration is loaded and sockets are bound (no token needed) |
//! | `GET /v1/status` | every profile and endpoint: status, last probe, override, counts; last reload |
//! | `PUT /v1/profiles/{profile}/endpoints/{endpoint}` | `{"enabled": bool, "reason": "...", "expires_in": "10m"}` |
//! | `PUT /v1/profiles/{profile}/endpoints/{endpoint}/load` | `{"value": 123.4}` for a push load source |
//! | `POST /v1/reload` | reload configuration and zones, as SIGHUP does |
//! | `GET /v1/explain?name=&type=&client=` | the decision trace, with live endpoint status |
//! | `GET /metrics` | Prometheus text format, or OpenMetrics when asked |
//! | `GET /` | a read-only status page (HTML): burst charts and answers per endpoint |

mod api;
mod exposition;
mod page;
mod views;

pub use api::expire_overrides;
use api::{push_load, set_override};
use exposition::{metrics, to_openmetrics};
use page::status_page;
use views::{endpoint_json, status};
pub use views::{rfc3339, shown_status};

use crate::config::parse_duration;
use crate::control::runtime::{HistoryPoint, Runtime};
use crate::dns::metrics::{header, label};
use crate::live::EndpointKey;
use crate::live::{AdminOverride, Status};
use crate::state::{Shared, Snapshot};
use crate::traffic::policy::{self, Target};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

/// How long one request may take from connect to the last byte of the answer.
const DEADLINE: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;
/// Admin connections served at once.
pub const MAX_CONNECTIONS: usize = 256;

pub use crate::state::ReloadRequest;

/// What the API serves from.
#[derive(Debug)]
pub struct Context {
    pub shared: Arc<Shared>,
    pub rt: Arc<Runtime>,
    pub token: Option<String>,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub ready: Arc<AtomicBool>,
}

/// Accepts admin connections until `stop` changes.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    // A flood of connections cannot hold more than this many requests' worth of memory: past
    // the limit a new connection is closed at once.
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        debug!(%peer, "admin connection limit reached; closing the new connection");
                        drop(stream);
                        continue;
                    };
                    let ctx = ctx.clone();
                    // HTTPS when the configuration in force says so (the handshake is inside
                    // the request's deadline).
                    let tls = ctx.shared.load().admin.tls.clone();
                    tokio::spawn(async move {
                        let serve = async {
                            match tls {
                                None => connection(stream, &ctx).await,
                                Some((cert, key)) => match acceptor(&cert, &key) {
                                    Ok(a) => match a.accept(stream).await {
                                        Ok(s) => connection(s, &ctx).await,
                                        Err(e) => debug!(%peer, error = %e, "admin TLS handshake failed"),
                                    },
                                    Err(e) => warn!(error = %e, "admin TLS unavailable"),
                                },
                            }
                        };
                        if tokio::time::timeout(DEADLINE, serve).await.is_err() {
                            debug!("admin request timed out");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    debug!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// The TLS acceptor for the admin listener's certificate and key, built again when either
/// file changes (a renewed certificate is served without a restart).
fn acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    type Stamp = (std::path::PathBuf, std::path::PathBuf, Option<SystemTime>, Option<SystemTime>);
    type Cache = std::sync::Mutex<Option<(Stamp, tokio_rustls::TlsAcceptor)>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stamp: Stamp = (cert.to_path_buf(), key.to_path_buf(), mtime(cert), mtime(key));
    let cache = CACHE.get_or_init(Default::default);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((s, a)) = c.as_ref()
        && *s == stamp
    {
        return Ok(a.clone());
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| e.to_string())?;
    let a = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    *c = Some((stamp, a.clone()));
    Ok(a)
}

/// An HTTP response: status, content type, body.
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

fn json_response(status: u16, v: Value) -> Response {
    Response { status, content_type: "application/json", body: format!("{v:#}\n") }
}

fn error(status: u16, message: impl Into<String>) -> Response {
    json_response(status, json!({ "error": message.into() }))
}

fn unauthorized() -> Response {
    error(401, "a bearer token is required (Authorization: Bearer ...)")
}

/// The token an `Authorization` header carries: `Bearer <token>`, or HTTP Basic with the token
/// as the password (any user name: what a browser sends after prompting). Schemes are
/// case-insensitive (RFC 7235).
fn bearer(value: &[u8]) -> Option<String> {
    use base64::Engine as _;
    let v = std::str::from_utf8(value).ok()?.trim();
    let (scheme, cred) = v.split_once(char::is_whitespace)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(cred.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD.decode(cred.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        return text.split_once(':').map(|(_, password)| password.to_string());
    }
    None
}

/// Serves one connection with hyper's HTTP/1.1 server: one request (no keep-alive), the head
/// bounded by [`MAX_HEAD`] (hyper answers 431 past it, 400 to a malformed request), the body
/// by [`MAX_BODY`]. The caller bounds the whole exchange by [`DEADLINE`].
async fn connection<S>(stream: S, ctx: &Arc<Context>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let ctx = ctx.clone();
    let service = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(into_hyper(handle(&ctx, req).await)) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(MAX_HEAD.max(8192))
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(DEADLINE)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        debug!(error = %e, "admin connection ended with an error");
    }
}

/// One request: the token, the body (read only once the token checked out), the route.
async fn handle(ctx: &Context, req: hyper::Request<hyper::body::Incoming>) -> Response {
    use http_body_util::{BodyExt, Limited};
    let header = |name: &str| req.headers().get(name).map(|v| v.as_bytes());
    let token = header("authorization").and_then(bearer);
    // Prometheus asks for OpenMetrics first when it can take it.
    let openmetrics = header("accept")
        .and_then(|v| std::str::from_utf8(v).ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let content_length = match header("content-length").map(std::str::from_utf8) {
        None => 0,
        Some(Ok(v)) => match v.trim().parse::<usize>() {
            Ok(n) => n,
            Err(_) => return error(400, "invalid Content-Length"),
        },
        Some(Err(_)) => return error(400, "invalid Content-Length"),
    };
    if content_length > MAX_BODY {
        return error(413, format!("request body over {MAX_BODY} bytes"));
    }
    if content_length > 0
        && let Some(want) = &ctx.token
        && !token.as_deref().is_some_and(|t| same_token(t, want))
    {
        // No room is made for the body of a request that will be refused anyway.
        return unauthorized();
    }
    let method = req.method().as_str().to_string();
    let target = req.uri().path_and_query().map_or("/".to_string(), |p| p.as_str().to_string());
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(413, format!("request body over {MAX_BODY} bytes")),
    };
    route(ctx, &method, &target, token.as_deref(), &body, openmetrics).await
}

/// Our response as hyper's: status, content type, no caching; on 401 two challenges (API
/// clients send a bearer token; a browser prompts for Basic, where the token is the
/// password).
fn into_hyper(r: Response) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
    let mut b = hyper::Response::builder()
        .status(r.status)
        .header("Content-Type", r.content_type)
        .header("Cache-Control", "no-store");
    if r.status == 401 {
        b = b
            .header("WWW-Authenticate", "Basic realm=\"Meridian\", charset=\"UTF-8\"")
            .header("WWW-Authenticate", "Bearer realm=\"Meridian\"");
    }
    b.body(http_body_util::Full::new(hyper::body::Bytes::from(r.body)))
        .unwrap_or_else(|_| hyper::Response::new(http_body_util::Full::default()))
}

/// Compares tokens in time independent of where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Healthz,
    Readyz,
    Page,
    Metrics,
    Status,
    Override,
    Load,
    Reload,
    Explain,
}

/// Every route, in one place: method, path (`*` matches one segment), what it is, and
/// whether it is public (no token). Dispatch, the 405 answer and the docs follow this list.
const ROUTES: &[(&str, &str, Kind, bool)] = &[
    ("GET", "/healthz", Kind::Healthz, true),
    ("GET", "/readyz", Kind::Readyz, true),
    ("GET", "/", Kind::Page, false),
    ("GET", "/metrics", Kind::Metrics, false),
    ("GET", "/v1/status", Kind::Status, false),
    ("PUT", "/v1/profiles/*/endpoints/*", Kind::Override, false),
    ("PUT", "/v1/profiles/*/endpoints/*/load", Kind::Load, false),
    ("POST", "/v1/reload", Kind::Reload, false),
    ("GET", "/v1/explain", Kind::Explain, false),
];

/// The segments of `segs` that `pattern`'s `*`s stand for, when it matches.
fn captures<'a>(pattern: &str, segs: &[&'a str]) -> Option<Vec<&'a str>> {
    let want: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    if want.len() != segs.len() {
        return None;
    }
    let mut out = Vec::new();
    for (w, s) in want.iter().zip(segs) {
        match *w {
            "*" => out.push(*s),
            w if w == *s => {}
            _ => return None,
        }
    }
    Some(out)
}

async fn route(
    ctx: &Context,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: &[u8],
    openmetrics: bool,
) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments: Vec<String> =
        path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let matching: Vec<(&str, Kind, bool, Vec<&str>)> = ROUTES
        .iter()
        .filter_map(|(m, p, k, public)| Some((*m, *k, *public, captures(p, &segs)?)))
        .collect();
    let found = matching.iter().find(|r| r.0 == method).cloned();
    // Only the public routes answer without the token; everything else, unknown paths
    // included, needs it first (nothing about the API is told to a stranger).
    if !found.as_ref().is_some_and(|r| r.2)
        && let Some(want) = &ctx.token
        && !token.is_some_and(|t| same_token(t, want))
    {
        return unauthorized();
    }
    let Some((_, kind, _, args)) = found else {
        if matching.is_empty() {
            return error(404, format!("no such resource: {path}"));
        }
        let allowed: Vec<&str> = matching.iter().map(|r| r.0).collect();
        return error(
            405,
            format!("{method} is not allowed on {path} (allowed: {})", allowed.join(", ")),
        );
    };
    match kind {
        Kind::Healthz => json_response(200, json!({ "status": "ok" })),
        Kind::Readyz => {
            if ctx.ready.load(Ordering::Relaxed) {
                json_response(200, json!({ "status": "ready" }))
            } else {
                error(503, "not ready")
            }
        }
        Kind::Page => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: status_page(&ctx.shared.load(), &ctx.rt),
        },
        Kind::Metrics if openmetrics => Response {
            status: 200,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body: to_openmetrics(&metrics(&ctx.shared.load(), &ctx.rt)),
        },
        Kind::Metrics => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics(&ctx.shared.load(), &ctx.rt),
        },
        Kind::Status => json_response(200, status(&ctx.shared.load(), &ctx.rt)),
        Kind::Override => set_override(ctx, args[0], args[1], body),
        Kind::Load => push_load(ctx, args[0], args[1], body),
        Kind::Reload => {
            let (tx, rx) = oneshot::channel();
            let req = ReloadRequest { kind: crate::state::ReloadKind::Full, reply: tx };
            if ctx.reload.send(req).await.is_err() {
                return error(503, "shutting down");
            }
            match rx.await {
                Ok(Ok(())) => json_response(200, json!({ "reloaded": true })),
                Ok(Err(d)) => json_response(
                    422,
                    json!({ "error": "the new configuration was rejected; the previous one is still serving",
                            "diagnostics": d.0.iter().map(|x| x.to_string()).collect::<Vec<_>>() }),
                ),
                Err(_) => error(503, "shutting down"),
            }
        }
        Kind::Explain => explain(ctx, query),
    }
}

/// `GET /v1/explain?name=&type=&client=`.
fn explain(ctx: &Context, query: &str) -> Response {
    // A query string is form-encoded: there `+` is a space.
    let param = |k: &str| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
    };
    let (Some(name), Some(client)) = (param("name"), param("client")) else {
        return error(
            400,
            "explain needs ?name=NAME&client=IP[/PREFIX] (and optionally &type=TYPE)",
        );
    };
    let rtype = param("type").unwrap_or_else(|| "A".into());
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    match crate::tools::explain::explain(&ctx.shared.load(), &name, &rtype, &client, seed) {
        Ok(e) => json_response(
            200,
            json!({ "query": e.query, "trace": e.trace, "rcode": e.rcode, "authoritative": e.authoritative,
                    "records": e.records, "ecs_scope": e.ecs_scope }),
        ),
        Err(e) => error(400, e.0),
    }
}

/// A path segment, percent-decoded (`+` is a plus sign in a path, not a space).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_route_list() {
        let segs = ["v1", "profiles", "www", "endpoints", "hub"];
        assert_eq!(captures("/v1/profiles/*/endpoints/*", &segs), Some(vec!["www", "hub"]));
        assert_eq!(captures("/v1/profiles/*/endpoints/*/load", &segs), None);
        assert_eq!(captures("/", &[]), Some(vec![]));
        // Every route's pattern is unique per method, and only health and readiness are public.
        for (i, a) in ROUTES.iter().enumerate() {
            assert!(ROUTES[i + 1..].iter().all(|b| (a.0, a.1) != (b.0, b.1)), "{a:?} twice");
            assert_eq!(a.3, matches!(a.2, Kind::Healthz | Kind::Readyz), "{a:?}");
        }
    }

    #[test]
    fn dates_and_decoding() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_305_600)),
            "2026-11-22T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661)),
            "2000-02-29T01:01:01Z"
        );
        assert_eq!(percent_decode("203.0.113.7%2F24"), "203.0.113.7/24");
        assert_eq!(percent_decode("a+b%zz%4"), "a+b%zz%4");
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("abc", "ab"));
    }
}
