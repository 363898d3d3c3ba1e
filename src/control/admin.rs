//! The admin HTTP API and Prometheus metrics.
//!
//! A deliberately small HTTP/1.1 server: one request per connection, headers and body size
//! limited, the whole exchange bounded by a deadline, so a slow or hostile client costs one
//! task for a few seconds and nothing else. Requests are parsed with `httparse`. It changes
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
//! | `GET /metrics` | Prometheus text format |
//! | `GET /` | a read-only status page (HTML): burst charts and answers per endpoint |

use crate::config::parse_duration;
use crate::control::runtime::{HistoryPoint, Runtime};
use crate::diag::Diagnostics;
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info};

/// How long one request may take from connect to the last byte of the answer.
const DEADLINE: Duration = Duration::from_secs(10);
const MAX_HEAD: usize = 16 * 1024;
const MAX_BODY: usize = 64 * 1024;
/// Admin connections served at once.
pub const MAX_CONNECTIONS: usize = 256;

/// A reload request and where to send its outcome.
pub type ReloadRequest = oneshot::Sender<Result<(), Diagnostics>>;

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
                    tokio::spawn(async move {
                        if tokio::time::timeout(DEADLINE, connection(stream, &ctx)).await.is_err() {
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

async fn connection(mut stream: TcpStream, ctx: &Context) {
    // Memory grows only as the request needs it: the head as it arrives, the body once the
    // head has announced it (and, when a token is set, once the token is right).
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    // Read until the head is complete (and then the body it announces).
    let (method, path, token, body_start, content_length, openmetrics) = loop {
        let room = (MAX_HEAD - buf.len()).min(chunk.len());
        let n = match stream.read(&mut chunk[..room]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let len = buf.len();
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(head)) => {
                let mut content_length = 0usize;
                let mut token = None;
                let mut openmetrics = false;
                for h in req.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        content_length = match std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                        {
                            Some(n) => n,
                            None => {
                                return respond(&mut stream, error(400, "invalid Content-Length"))
                                    .await;
                            }
                        };
                    } else if h.name.eq_ignore_ascii_case("authorization") {
                        token = bearer(h.value);
                    } else if h.name.eq_ignore_ascii_case("accept") {
                        // Prometheus asks for OpenMetrics first when it can take it.
                        openmetrics = std::str::from_utf8(h.value)
                            .is_ok_and(|v| v.contains("application/openmetrics-text"));
                    }
                }
                break (
                    req.method.unwrap_or("").to_string(),
                    req.path.unwrap_or("/").to_string(),
                    token,
                    head,
                    content_length,
                    openmetrics,
                );
            }
            Ok(httparse::Status::Partial) if len < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => {
                return respond(&mut stream, error(431, "request head too large")).await;
            }
            Err(e) => {
                return respond(&mut stream, error(400, format!("malformed request: {e}"))).await;
            }
        }
    };
    if content_length > MAX_BODY {
        return respond(&mut stream, error(413, format!("request body over {MAX_BODY} bytes")))
            .await;
    }
    if content_length > 0
        && let Some(want) = &ctx.token
        && !token.as_deref().is_some_and(|t| same_token(t, want))
    {
        // No room is made for the body of a request that will be refused anyway.
        return respond(&mut stream, unauthorized()).await;
    }
    let end = body_start + content_length;
    if buf.len() < end {
        buf.reserve_exact(end - buf.len());
    }
    while buf.len() < end {
        let room = (end - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = &buf[body_start..body_start + content_length];
    let response = route(ctx, &method, &path, token.as_deref(), body, openmetrics).await;
    respond(&mut stream, response).await;
}

async fn respond(stream: &mut TcpStream, r: Response) {
    let reason = match r.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    // Two challenges: API clients send a bearer token; a browser prompts for Basic, where the
    // token is the password.
    let auth = if r.status == 401 {
        "WWW-Authenticate: Basic realm=\"Meridian\", charset=\"UTF-8\"\r\nWWW-Authenticate: Bearer realm=\"Meridian\"\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{auth}Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        r.status,
        r.content_type,
        r.body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(r.body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Compares tokens in time independent of where they differ.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
    match (method, path) {
        ("GET", "/healthz") => return json_response(200, json!({ "status": "ok" })),
        ("GET", "/readyz") => {
            return if ctx.ready.load(Ordering::Relaxed) {
                json_response(200, json!({ "status": "ready" }))
            } else {
                error(503, "not ready")
            };
        }
        _ => {}
    }
    if let Some(want) = &ctx.token
        && !token.is_some_and(|t| same_token(t, want))
    {
        return unauthorized();
    }
    let segments: Vec<String> =
        path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method, segs.as_slice()) {
        ("GET", []) => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: status_page(&ctx.shared.load(), &ctx.rt),
        },
        ("GET", ["metrics"]) if openmetrics => Response {
            status: 200,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body: to_openmetrics(&metrics(&ctx.shared.load(), &ctx.rt)),
        },
        ("GET", ["metrics"]) => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics(&ctx.shared.load(), &ctx.rt),
        },
        ("GET", ["v1", "status"]) => json_response(200, status(&ctx.shared.load(), &ctx.rt)),
        ("PUT", ["v1", "profiles", profile, "endpoints", endpoint]) => {
            set_override(ctx, profile, endpoint, body)
        }
        ("PUT", ["v1", "profiles", profile, "endpoints", endpoint, "load"]) => {
            push_load(ctx, profile, endpoint, body)
        }
        ("POST", ["v1", "reload"]) => {
            let (tx, rx) = oneshot::channel();
            if ctx.reload.send(tx).await.is_err() {
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
        ("GET", ["v1", "explain"]) => {
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
            let seed =
                SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
            match crate::tools::explain::explain(&ctx.shared.load(), &name, &rtype, &client, seed) {
                Ok(e) => json_response(
                    200,
                    json!({ "query": e.query, "trace": e.trace, "rcode": e.rcode, "authoritative": e.authoritative,
                            "records": e.records, "ecs_scope": e.ecs_scope }),
                ),
                Err(e) => error(400, e.0),
            }
        }
        (
            _,
            ["metrics"]
            | ["v1", "status"]
            | ["v1", "reload"]
            | ["v1", "explain"]
            | ["v1", "profiles", _, "endpoints", _]
            | ["v1", "profiles", _, "endpoints", _, "load"],
        ) => error(405, format!("{method} is not allowed on {path}")),
        _ => error(404, format!("no such resource: {path}")),
    }
}

/// A path segment, percent-decoded (`+` is a plus sign in a path, not a space).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// RFC 3339 UTC, second precision.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// An endpoint's status as operators see it: Disabled when turned off (configuration or
/// override), a nested endpoint's derived from its child profile, else the signal.
pub fn shown_status(snap: &Snapshot, id: u32) -> Status {
    let p = &snap.policies;
    if !policy::enabled(p, id, &snap.signals) {
        return Status::Disabled;
    }
    match p.endpoints[id as usize].target {
        Target::Profile(_) if policy::available(p, id, &snap.signals, 0) => Status::Online,
        Target::Profile(_) => Status::Degraded,
        _ => snap.signals.status(id),
    }
}

fn endpoint_json(snap: &Snapshot, id: u32) -> Value {
    let e = &snap.policies.endpoints[id as usize];
    let target = match &e.target {
        Target::Addresses { v4, v6 } => {
            json!(
                v4.iter()
                    .map(|a| a.to_string())
                    .chain(v6.iter().map(|a| a.to_string()))
                    .collect::<Vec<_>>()
            )
        }
        Target::Cname(n) => json!({ "cname": n.to_string() }),
        Target::Profile(c) => {
            json!({ "profile": snap.policies.profiles[*c as usize].name.to_string() })
        }
    };
    let live = snap.signals.endpoint(id);
    // One lock for the whole view: the status, the probe behind it and the override agree.
    let d = live.detail().clone();
    let now = SystemTime::now();
    let mut v = json!({
        "name": e.name,
        "key": e.key.to_string(),
        "target": target,
        "status": shown_status(snap, id).as_str(),
        "enabled_in_config": e.enabled,
        "monitored": e.monitor.is_some(),
        "answers": live.answers(),
    });
    if e.monitor.is_some() {
        v["since"] = json!(rfc3339(d.health.since));
        if let Some(p) = &d.health.last_probe {
            v["last_probe"] = json!({
                "at": rfc3339(p.at),
                "ok": p.ok,
                "status_code": p.status_code,
                "error": p.error,
                "latency_ms": (p.latency.as_secs_f64() * 1e6).round() / 1e3,
            });
        }
    }
    if let Some(cfg) = &e.load {
        let l = &d.load;
        let fresh = l.fresh(cfg.stale_after, crate::control::load::now());
        v["load"] = json!({
            "raw": l.raw,
            "smoothed": l.smoothed,
            "capacity": cfg.capacity,
            "utilisation": fresh.map(|x| x / cfg.capacity),
            "age_seconds": l.age(crate::control::load::now()).map(|a| a.as_secs_f64()),
            "stale": fresh.is_none(),
            "samples": l.samples,
            "rejected": l.rejected,
            "failures": l.failures,
            "error": if l.failing { l.error.clone() } else { None },
        });
    }
    if let Some(o) = &d.admin {
        v["override"] = json!({
            "enabled": o.enabled,
            "reason": o.reason,
            "since": rfc3339(o.set_at),
            "expires_in_seconds": o.expires_at.map(|t| t.duration_since(now).map_or(0, |d| d.as_secs())),
        });
    }
    v
}

fn status(snap: &Snapshot, rt: &Runtime) -> Value {
    let profiles: Vec<Value> = snap
        .policies
        .profiles
        .iter()
        .enumerate()
        .map(|(pid, p)| {
            let live = snap.signals.profile(pid as u32);
            let mut v = json!({
                "name": p.name.to_string(),
                "method": p.method.as_str(),
                "ttl": p.ttl,
                "queries": live.queries(),
                "endpoints": p.endpoints.iter().map(|&id| endpoint_json(snap, id)).collect::<Vec<_>>(),
            });
            if p.burst.is_some() {
                let b = live.burst().clone();
                v["burst"] = json!({
                    "state": live.burst_state().as_str(),
                    "share": live.burst_share(),
                    "utilisation": b.as_ref().and_then(|b| b.utilisation),
                    // The controller's view: what it estimates and why the share is where it is.
                    "estimated_demand": b.as_ref().and_then(|b| b.machine.demand),
                    "held_share": b.as_ref().and_then(|b| b.machine.held),
                    "why": b.as_ref().map(|b| b.machine.why.clone()),
                    "last_transition": b.as_ref().and_then(|b| b.last_transition).map(rfc3339),
                    "transitions": b.as_ref().map_or(0, |b| b.transitions),
                    "webhooks_delivered": b.as_ref().map_or(0, |b| b.webhooks_ok),
                    "webhooks_failed": b.as_ref().map_or(0, |b| b.webhooks_failed),
                });
            }
            v
        })
        .collect();
    let reload = rt.reload_info();
    json!({
        "config": snap.path.display().to_string(),
        "zones": snap.zones.zones().iter().map(|z| z.origin().to_string()).collect::<Vec<_>>(),
        "last_reload": reload.last_at.map(rfc3339),
        "last_reload_error": reload.last_error,
        "queries_answered": rt.metrics.answered(),
        "profiles": profiles,
    })
}

/// The longest override expiry accepted: a year. Longer is "until cleared", which is what
/// leaving `expires_in` out says.
const MAX_EXPIRY: Duration = Duration::from_secs(366 * 24 * 3600);

/// The endpoint a request names, or the 404 that says what is missing.
fn find_endpoint(snap: &Snapshot, profile: &str, endpoint: &str) -> Result<u32, Response> {
    let Some(pid) = snap.policies.profile_by_name(profile) else {
        return Err(error(404, format!("no profile {profile:?}")));
    };
    snap.policies
        .endpoint_in(pid, endpoint)
        .ok_or_else(|| error(404, format!("profile {profile:?} has no endpoint {endpoint:?}")))
}

fn set_override(ctx: &Context, profile: &str, endpoint: &str, body: &[u8]) -> Response {
    let snap = ctx.shared.load();
    let id = match find_endpoint(&snap, profile, endpoint) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error(400, format!("the body is not JSON: {e}")),
    };
    let Some(obj) = v.as_object() else { return error(400, "the body must be a JSON object") };
    if let Some(k) = obj.keys().find(|k| !["enabled", "reason", "expires_in"].contains(&k.as_str()))
    {
        return error(400, format!("unknown field {k:?}: expected enabled, reason, expires_in"));
    }
    let Some(enabled) = obj.get("enabled").and_then(Value::as_bool) else {
        return error(400, "\"enabled\": true or false is required");
    };
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.chars().count() <= 500 => Some(r.clone()),
        Some(_) => return error(400, "\"reason\" must be a string of at most 500 characters"),
    };
    let expires_in = match obj.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => match parse_duration(d) {
            Some(d) if d > Duration::ZERO => Some(d),
            _ => {
                return error(
                    400,
                    format!("\"expires_in\" {d:?} is not a duration such as \"10m\""),
                );
            }
        },
        Some(Value::Number(n)) => match n.as_u64() {
            Some(s) if s > 0 => Some(Duration::from_secs(s)),
            _ => return error(400, "\"expires_in\" must be a positive whole number of seconds"),
        },
        Some(_) => return error(400, "\"expires_in\" must be a duration such as \"10m\""),
    };
    if expires_in.is_some_and(|d| d > MAX_EXPIRY) {
        return error(
            400,
            "\"expires_in\" is at most a year; leave it out for an override that lasts until cleared",
        );
    }
    let e = &snap.policies.endpoints[id as usize];
    let now = SystemTime::now();
    let live = snap.signals.endpoint(id);
    if enabled == e.enabled && expires_in.is_none() {
        // Back to what the configuration says: no override is left.
        live.set_override(None);
        info!(endpoint = %e.key, "admin override cleared");
    } else {
        live.set_override(Some(AdminOverride {
            enabled,
            reason: reason.clone(),
            set_at: now,
            expires_at: expires_in.map(|d| now + d),
        }));
        info!(endpoint = %e.key, enabled, reason = reason.as_deref().unwrap_or(""), expires_in = ?expires_in, "admin override set");
    }
    ctx.rt.metrics.override_changes.fetch_add(1, Ordering::Relaxed);
    json_response(200, endpoint_json(&snap, id))
}

fn push_load(ctx: &Context, profile: &str, endpoint: &str, body: &[u8]) -> Response {
    let snap = ctx.shared.load();
    let id = match find_endpoint(&snap, profile, endpoint) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let e = &snap.policies.endpoints[id as usize];
    let Some(cfg) = e.load.as_ref().filter(|l| l.source == crate::config::LoadSource::Push) else {
        return error(409, format!("endpoint {endpoint:?} has no push load source"));
    };
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v.get("value").and_then(Value::as_f64),
        Err(e) => return error(400, format!("the body is not JSON: {e}")),
    };
    let Some(value) = value else {
        return error(400, "\"value\": a number is required");
    };
    // The same check as every other source's samples; a refused one is counted there too.
    if let Err(r) = crate::control::load::record(snap.signals.endpoint(id), &e.key, cfg, value) {
        return error(400, format!("\"value\": {r}"));
    }
    json_response(200, endpoint_json(&snap, id))
}

/// Lapses overrides whose time is up (run every 250 ms by `app`).
pub fn expire_overrides(shared: &Shared, rt: &Runtime) {
    let now = SystemTime::now();
    let snap = shared.load();
    for (id, e) in snap.policies.endpoints.iter().enumerate() {
        if snap.signals.endpoint(id as u32).expire_override(now) {
            rt.metrics.override_changes.fetch_add(1, Ordering::Relaxed);
            info!(endpoint = %e.key, "admin override expired");
        }
    }
}

fn metrics(snap: &Snapshot, rt: &Runtime) -> String {
    use crate::traffic::burst::State;
    let mut out = String::with_capacity(8192);
    rt.metrics.render(&mut out);
    let p = &snap.policies;
    // Every endpoint of the current snapshot, then those a reload removed within the grace
    // period (counters only, so that a last scrape sees their final counts; their status is
    // no longer anyone's).
    let current: Vec<(String, String, &crate::live::EndpointLive)> = p
        .endpoints
        .iter()
        .enumerate()
        .map(|(id, e)| {
            (label(&e.key.profile.to_string()), label(&e.name), &**snap.signals.endpoint(id as u32))
        })
        .collect();
    let retired = rt.retired_endpoints();
    let retired: Vec<(String, String, &crate::live::EndpointLive)> = retired
        .iter()
        .map(|(k, l)| (label(&k.profile.to_string()), label(&k.endpoint), &**l))
        .collect();
    let all = || current.iter().chain(retired.iter());
    let retired_profiles = rt.retired_profiles();

    header(
        &mut out,
        "meridian_profile_queries_total",
        "counter",
        "Queries answered by a traffic-managed name, by profile.",
    );
    for (pid, pr) in p.profiles.iter().enumerate() {
        let n = label(&pr.name.to_string());
        let v = snap.signals.profile(pid as u32).queries();
        let _ = writeln!(out, "meridian_profile_queries_total{{profile=\"{n}\"}} {v}");
    }
    for (name, l) in &retired_profiles {
        let n = label(&name.to_string());
        let _ = writeln!(out, "meridian_profile_queries_total{{profile=\"{n}\"}} {}", l.queries());
    }
    header(
        &mut out,
        "meridian_endpoint_answers_total",
        "counter",
        "Answers that named an endpoint, by profile and endpoint.",
    );
    for (pn, en, l) in all() {
        let _ = writeln!(
            out,
            "meridian_endpoint_answers_total{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            l.answers()
        );
    }
    header(&mut out, "meridian_endpoint_status", "gauge", "1 for the endpoint's current status.");
    for (id, (pn, en, _)) in current.iter().enumerate() {
        let st = shown_status(snap, id as u32);
        for s in [
            Status::CheckingEndpoint,
            Status::Online,
            Status::Degraded,
            Status::Disabled,
            Status::Unmonitored,
        ] {
            let _ = writeln!(
                out,
                "meridian_endpoint_status{{profile=\"{pn}\",endpoint=\"{en}\",status=\"{}\"}} {}",
                s.as_str(),
                u8::from(st == s)
            );
        }
    }
    header(
        &mut out,
        "meridian_endpoint_available",
        "gauge",
        "1 when the endpoint can be answered with.",
    );
    for (id, (pn, en, _)) in current.iter().enumerate() {
        let avail = policy::available(p, id as u32, &snap.signals, 0);
        let _ = writeln!(
            out,
            "meridian_endpoint_available{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            u8::from(avail)
        );
    }
    // Probe counters of monitored endpoints (and retired ones that were probed).
    let probed: Vec<(&String, &String, crate::live::Health)> = current
        .iter()
        .enumerate()
        .filter(|(id, _)| p.endpoints[*id].monitor.is_some())
        .map(|(_, x)| x)
        .chain(retired.iter())
        .map(|(pn, en, l)| (pn, en, l.detail().health.clone()))
        .collect();
    header(&mut out, "meridian_probes_total", "counter", "Health probes, by result.");
    for (pn, en, h) in &probed {
        for (result, n) in [("success", h.probes_ok), ("failure", h.probes_failed)] {
            let _ = writeln!(
                out,
                "meridian_probes_total{{profile=\"{pn}\",endpoint=\"{en}\",result=\"{result}\"}} {n}"
            );
        }
    }
    header(&mut out, "meridian_probe_duration_seconds", "summary", "Health probe duration.");
    for (pn, en, h) in &probed {
        let _ = writeln!(
            out,
            "meridian_probe_duration_seconds_sum{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            h.probe_seconds
        );
        let _ = writeln!(
            out,
            "meridian_probe_duration_seconds_count{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            h.probes_ok + h.probes_failed
        );
    }
    header(
        &mut out,
        "meridian_endpoint_status_changes_total",
        "counter",
        "Endpoint status transitions from probes.",
    );
    for (pn, en, h) in &probed {
        let _ = writeln!(
            out,
            "meridian_endpoint_status_changes_total{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            h.transitions
        );
    }
    let loads: Vec<(&String, &String, crate::live::Load, Option<f64>)> = current
        .iter()
        .enumerate()
        .filter_map(|(id, (pn, en, l))| {
            let cfg = p.endpoints[id].load.as_ref()?;
            let load = l.detail().load.clone();
            let u =
                load.fresh(cfg.stale_after, crate::control::load::now()).map(|v| v / cfg.capacity);
            Some((pn, en, load, u))
        })
        .collect();
    header(
        &mut out,
        "meridian_endpoint_utilisation",
        "gauge",
        "Smoothed load over capacity; absent when unknown or stale.",
    );
    for (pn, en, _, u) in &loads {
        if let Some(u) = u {
            let _ = writeln!(
                out,
                "meridian_endpoint_utilisation{{profile=\"{pn}\",endpoint=\"{en}\"}} {u}"
            );
        }
    }
    header(
        &mut out,
        "meridian_endpoint_load_failures_total",
        "counter",
        "Failed reads of an endpoint's load source.",
    );
    for (pn, en, l, _) in &loads {
        let _ = writeln!(
            out,
            "meridian_endpoint_load_failures_total{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            l.failures
        );
    }
    header(
        &mut out,
        "meridian_endpoint_load_rejected_total",
        "counter",
        "Load samples refused (not finite, negative, or over 100 times capacity).",
    );
    for (pn, en, l, _) in &loads {
        let _ = writeln!(
            out,
            "meridian_endpoint_load_rejected_total{{profile=\"{pn}\",endpoint=\"{en}\"}} {}",
            l.rejected
        );
    }
    let bursts: Vec<(String, &crate::live::ProfileLive)> = p
        .profiles
        .iter()
        .enumerate()
        .filter(|(_, pr)| pr.burst.is_some())
        .map(|(pid, pr)| (label(&pr.name.to_string()), &**snap.signals.profile(pid as u32)))
        .collect();
    header(&mut out, "meridian_burst_state", "gauge", "1 for the profile's current burst state.");
    for (n, l) in &bursts {
        let st = l.burst_state();
        for s in [State::Idle, State::Warming, State::Bursting, State::Draining] {
            let _ = writeln!(
                out,
                "meridian_burst_state{{profile=\"{n}\",state=\"{}\"}} {}",
                s.as_str(),
                u8::from(st == s)
            );
        }
    }
    header(
        &mut out,
        "meridian_burst_share",
        "gauge",
        "Share of answers spilled to overflow endpoints.",
    );
    for (n, l) in &bursts {
        let _ = writeln!(out, "meridian_burst_share{{profile=\"{n}\"}} {}", l.burst_share());
    }
    header(&mut out, "meridian_burst_transitions_total", "counter", "Burst state changes.");
    for (n, l) in &bursts {
        let t = l.burst().as_ref().map_or(0, |b| b.transitions);
        let _ = writeln!(out, "meridian_burst_transitions_total{{profile=\"{n}\"}} {t}");
    }
    header(
        &mut out,
        "meridian_admin_overrides",
        "gauge",
        "Endpoint overrides currently set by operators.",
    );
    let overrides = current.iter().filter(|(_, _, l)| l.detail().admin.is_some()).count();
    let _ = writeln!(out, "meridian_admin_overrides {overrides}");
    header(&mut out, "meridian_build_info", "gauge", "Always 1; the labels say which build runs.");
    let _ = writeln!(
        out,
        "meridian_build_info{{version=\"{}\",os=\"{}\",arch=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    crate::control::process::render(&mut out, rt.started());
    out
}

/// The exposition in OpenMetrics 1.0 text (for a scraper that asks for it): the same
/// samples; a counter's family is named without its `_total` suffix; `# EOF` ends it.
fn to_openmetrics(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        let meta = line.strip_prefix("# HELP ").map(|r| ("# HELP ", r));
        let meta = meta.or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((tag, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let family = if counters.contains(name) {
                    name.strip_suffix("_total").unwrap_or(name)
                } else {
                    name
                };
                let _ = writeln!(out, "{tag}{family} {tail}");
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The read-only status page: the same as `/v1/status`, as HTML that refreshes itself, with a
/// chart of answers per second per endpoint over the sampled history.
fn status_page(snap: &Snapshot, rt: &Runtime) -> String {
    let v = status(snap, rt);
    let mut h = String::with_capacity(16 * 1024);
    h += "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"10\">\
          <title>Meridian status</title><style>\
          body{font:14px sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 20px}\
          td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}th{background:#f4f4f4}\
          .Online{color:#1a7f37}.Degraded{color:#c62828}.Disabled{color:#777}.CheckingEndpoint{color:#9a6700}\
          .muted{color:#777}</style></head><body>";
    let _ = write!(
        h,
        "<h1>Meridian</h1><p class=\"muted\">configuration {} · zones {} · {} queries answered · last reload {}",
        escape(v["config"].as_str().unwrap_or("")),
        escape(
            &v["zones"]
                .as_array()
                .map(|z| z.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
        v["queries_answered"],
        escape(v["last_reload"].as_str().unwrap_or("never"))
    );
    if let Some(e) = v["last_reload_error"].as_str() {
        let _ = write!(h, "</p><p class=\"Degraded\">last reload failed: {}", escape(e));
    }
    h += "</p>";
    h += &chart(rt, snap);
    for p in v["profiles"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<h2>{}</h2><p class=\"muted\">{}, TTL {}, {} queries",
            escape(p["name"].as_str().unwrap_or("")),
            escape(p["method"].as_str().unwrap_or("")),
            p["ttl"],
            p["queries"]
        );
        if p["burst"].is_object() {
            let b = &p["burst"];
            let _ = write!(
                h,
                " · burst <b>{}</b>, share {:.0} %, utilisation {}",
                escape(b["state"].as_str().unwrap_or("")),
                b["share"].as_f64().unwrap_or(0.0) * 100.0,
                b["utilisation"]
                    .as_f64()
                    .map_or("unknown".into(), |u| format!("{:.0} %", u * 100.0))
            );
            if let Some(why) = b["why"].as_str().filter(|w| !w.is_empty()) {
                let _ = write!(h, "<br><small>controller: {}</small>", escape(why));
            }
        }
        h += "</p><table><tr><th>endpoint</th><th>target</th><th>status</th><th>since</th><th>last probe</th><th>load</th><th>override</th><th>answers</th></tr>";
        for e in p["endpoints"].as_array().into_iter().flatten() {
            let status = e["status"].as_str().unwrap_or("");
            let probe = match &e["last_probe"] {
                Value::Object(pr) => match (
                    pr.get("status_code").and_then(Value::as_u64),
                    pr.get("error").and_then(Value::as_str),
                ) {
                    (_, Some(err)) => format!("failed: {}", escape(err)),
                    (Some(c), None) => format!(
                        "{c} in {} ms",
                        pr.get("latency_ms").and_then(Value::as_f64).unwrap_or(0.0)
                    ),
                    (None, None) => "ok".into(),
                },
                _ => "<span class=\"muted\">not monitored</span>".into(),
            };
            let load = match &e["load"] {
                Value::Object(l) => match l.get("utilisation").and_then(Value::as_f64) {
                    Some(u) => format!("{:.0} %", u * 100.0),
                    None => "<span class=\"Degraded\">unknown</span>".into(),
                },
                _ => String::new(),
            };
            let ovr = match &e["override"] {
                Value::Object(o) => format!(
                    "{} {}",
                    if o.get("enabled") == Some(&Value::Bool(false)) {
                        "disabled"
                    } else {
                        "enabled"
                    },
                    escape(o.get("reason").and_then(Value::as_str).unwrap_or(""))
                ),
                _ => String::new(),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"{status}\">{status}</td><td>{}</td><td>{probe}</td><td>{load}</td><td>{ovr}</td><td>{}</td></tr>",
                escape(e["name"].as_str().unwrap_or("")),
                escape(&target_text(&e["target"])),
                escape(e["since"].as_str().unwrap_or("")),
                e["answers"]
            );
        }
        h += "</table>";
    }
    h += "<p class=\"muted\">JSON: <a href=\"/v1/status\">/v1/status</a> · metrics: <a href=\"/metrics\">/metrics</a></p></body></html>\n";
    h
}

/// An endpoint's target as people write it: addresses, `cname X`, `profile X`.
fn target_text(t: &Value) -> String {
    match t {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// The status page's charts over the sampled history (every 10 s): one per burst profile
/// (its endpoints' answers per second; its utilisation, share and thresholds; state bands and
/// transitions), then answers per second for every endpoint. Drawn by the same
/// [`crate::tools::chart`] as `meridian simulate --svg`.
fn chart(rt: &Runtime, snap: &Snapshot) -> String {
    use crate::tools::chart::Chart;
    let points = rt.history();
    if points.len() < 2 {
        return "<p class=\"muted\">The charts appear after two samples (every 10 seconds).</p>"
            .into();
    }
    let rate = |a: &HistoryPoint, b: &HistoryPoint, key: &EndpointKey| {
        let get = |p: &HistoryPoint| p.answers.iter().find(|(k, _)| k == key).map_or(0, |x| x.1);
        let dt = b.at.duration_since(a.at).map_or(1.0, |d| d.as_secs_f64().max(0.001));
        get(b).saturating_sub(get(a)) as f64 / dt
    };
    let start = points[1].at;
    let times: Vec<f64> = points[1..]
        .iter()
        .map(|p| p.at.duration_since(start).map_or(0.0, |d| d.as_secs_f64()))
        .collect();
    let series = |keys: &[&EndpointKey]| -> Vec<(String, Vec<f64>)> {
        keys.iter()
            .map(|k| (k.to_string(), points.windows(2).map(|w| rate(&w[0], &w[1], k)).collect()))
            .filter(|(_, v): &(String, Vec<f64>)| v.iter().any(|x| *x > 0.0))
            .collect()
    };
    // Wall-clock labels (UTC): the page is read live.
    let clock_start = start.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs());
    let mut out = String::new();
    for p in snap.policies.profiles.iter() {
        let Some(b) = &p.burst else { continue };
        let keys: Vec<&EndpointKey> =
            p.endpoints.iter().map(|&id| &snap.policies.endpoints[id as usize].key).collect();
        let bursts: Vec<Option<&crate::control::runtime::BurstPoint>> =
            points[1..].iter().map(|pt| pt.bursts.iter().find(|x| x.profile == p.name)).collect();
        let mut events = Vec::new();
        for (i, w) in bursts.windows(2).enumerate() {
            if let (Some(a), Some(c)) = (w[0], w[1])
                && a.state != c.state
            {
                events.push((times[i + 1], format!("→ {}", c.state.as_str())));
            }
        }
        out += &Chart {
            title: format!("{} (burst)", p.name),
            times: times.clone(),
            clock_start,
            rates: series(&keys),
            rate_unit: "answers/s".into(),
            utilisation: bursts.iter().map(|x| x.and_then(|x| x.utilisation)).collect(),
            share: bursts.iter().map(|x| x.map_or(0.0, |x| x.share)).collect(),
            thresholds: Some((b.rule.target, b.rule.burst_at, b.rule.release_at)),
            bands: bursts
                .iter()
                .map(|x| x.and_then(|x| crate::tools::simulate::band(x.state)))
                .collect(),
            events,
        }
        .svg();
    }
    let all: Vec<&EndpointKey> = snap.policies.endpoints.iter().map(|e| &e.key).collect();
    let rates = series(&all);
    if rates.is_empty() {
        out += "<p class=\"muted\">No traffic-managed answers yet.</p>";
        return out;
    }
    out += &Chart {
        title: "answers per second, every endpoint".into(),
        times,
        clock_start,
        rates,
        rate_unit: "answers/s".into(),
        ..Chart::default()
    }
    .svg();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
