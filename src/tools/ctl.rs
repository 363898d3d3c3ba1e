//! The operator's CLI over the admin API of a running server: `meridian status`, `reload`,
//! `endpoint disable|enable`, `load push`. The address comes from `--admin`, else
//! `MERIDIAN_ADMIN`, else the configuration's `[admin] listen`; the token from
//! `MERIDIAN_ADMIN_TOKEN` (the name the shipped configuration's `token_env` uses) or
//! `--token-file`.

use crate::config::{Auth, ClientConfig};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the admin API is and how to call it.
#[derive(Debug, Clone)]
pub struct Admin {
    /// `http(s)://host:port`.
    pub base: String,
    client: ClientConfig,
}

/// Why a command could not be carried out, with the exit code it gives.
#[derive(Debug)]
pub struct CtlError {
    pub message: String,
    /// 1: the server refused (a bad request, a rejected configuration); 2: it could not be
    /// reached or the token is missing or wrong.
    pub code: u8,
}

fn fail(code: u8, message: impl Into<String>) -> CtlError {
    CtlError { message: message.into(), code }
}

impl Admin {
    /// From the flags, the environment and (for the address) the configuration file.
    pub fn locate(
        flag: Option<String>,
        token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
        config: &Path,
    ) -> Result<Admin, CtlError> {
        let from_config = || {
            let c = crate::config::load(config).ok()?;
            let mut listen = c.admin.listen?;
            // A server listening on every interface is reached on loopback from here (the
            // container health check runs beside it).
            if listen.ip().is_unspecified() {
                listen.set_ip(match listen {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            let scheme = if c.admin.tls.is_some() { "https" } else { "http" };
            Some(format!("{scheme}://{listen}"))
        };
        let base = flag
            .or_else(|| std::env::var("MERIDIAN_ADMIN").ok().filter(|v| !v.is_empty()))
            .or_else(from_config)
            .unwrap_or_else(|| "http://127.0.0.1:8053".into());
        let base = if base.contains("://") { base } else { format!("http://{base}") };
        let token = match token_file {
            Some(f) => Some(
                std::fs::read_to_string(&f)
                    .map_err(|e| fail(2, format!("cannot read {}: {e}", f.display())))?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("MERIDIAN_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()),
        };
        let client =
            ClientConfig { ca_file, auth: token.map(Auth::Bearer), ..ClientConfig::default() };
        Ok(Admin { base: base.trim_end_matches('/').to_string(), client })
    }

    /// One request; the status and the JSON answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Value), CtlError> {
        let url = format!("{}{path}", self.base);
        let u = crate::control::http::parse_url(&url).map_err(|e| fail(2, e))?;
        let payload = body.map(|b| ("application/json", b.into_bytes()));
        let call = crate::control::http::call(
            &u,
            &self.client,
            method,
            &[("Accept", "application/json")],
            payload,
        );
        let (code, bytes) = tokio::time::timeout(Duration::from_secs(15), call)
            .await
            .map_err(|_| {
                fail(2, format!("the admin API at {} did not answer within 15 s", self.base))
            })?
            .map_err(|e| fail(2, format!("cannot reach the admin API at {}: {e}", self.base)))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if code == 401 {
            return Err(fail(
                2,
                format!(
                    "the admin API at {} refused: a token is needed or it is wrong (set MERIDIAN_ADMIN_TOKEN, or --token-file)",
                    self.base
                ),
            ));
        }
        Ok((code, v))
    }
}

/// The error text a 4xx/5xx answer carries.
fn refused(code: u16, v: &Value) -> CtlError {
    let mut m =
        format!("the server answered {code}: {}", v["error"].as_str().unwrap_or("no reason given"));
    for d in v["diagnostics"].as_array().into_iter().flatten() {
        let _ = write!(m, "\n{}", d.as_str().unwrap_or(""));
    }
    fail(1, m)
}

/// `meridian status`: a readable table (or the JSON as it is).
pub async fn status(admin: &Admin, json: bool) -> Result<String, CtlError> {
    let (code, v) = admin.call("GET", "/v1/status", None).await?;
    if code != 200 {
        return Err(refused(code, &v));
    }
    if json {
        return Ok(format!("{v:#}\n"));
    }
    Ok(table(&v))
}

/// `/v1/status` as text: one block per profile, one row per endpoint.
pub fn table(v: &Value) -> String {
    let mut s = String::new();
    let str = |x: &Value| x.as_str().unwrap_or("-").to_string();
    let _ = writeln!(
        s,
        "config {} · last reload {}{}",
        str(&v["config"]),
        str(&v["last_reload"]),
        v["last_reload_error"]
            .as_str()
            .map(|e| format!(" · last reload FAILED: {e}"))
            .unwrap_or_default()
    );
    for p in v["profiles"].as_array().into_iter().flatten() {
        let _ = write!(
            s,
            "\n{} ({}, ttl {}, {} queries)",
            str(&p["name"]),
            str(&p["method"]),
            p["ttl"],
            p["queries"]
        );
        let b = &p["burst"];
        if b.is_object() {
            let util = b["utilisation"]
                .as_f64()
                .map_or("unknown".into(), |u| format!("{:.0} %", u * 100.0));
            let _ = write!(
                s,
                " · burst {} share {:.0} % utilisation {util}",
                str(&b["state"]),
                b["share"].as_f64().unwrap_or(0.0) * 100.0
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  {:<18} {:<18} {:>8} {:>9}  override",
            "endpoint", "status", "load", "answers"
        );
        for e in p["endpoints"].as_array().into_iter().flatten() {
            let load = e["load"]["utilisation"]
                .as_f64()
                .map_or("-".into(), |u| format!("{:.0} %", u * 100.0));
            let ov = &e["override"];
            let ov = if ov.is_object() {
                let exp = ov["expires_in_seconds"]
                    .as_u64()
                    .map(|x| format!(" for {x}s"))
                    .unwrap_or_default();
                format!(
                    "{}{exp}{}",
                    if ov["enabled"].as_bool() == Some(false) { "disabled" } else { "enabled" },
                    ov["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default()
                )
            } else {
                String::new()
            };
            let answers = e["answers"].as_u64().unwrap_or(0);
            let _ = writeln!(
                s,
                "  {:<18} {:<18} {:>8} {:>9}  {ov}",
                str(&e["name"]),
                str(&e["status"]),
                load,
                answers
            );
        }
    }
    s
}

/// `meridian ready`: whether `/readyz` says ready (a container's or a supervisor's health
/// check; the exit code is what it reads).
pub async fn ready(admin: &Admin) -> Result<String, CtlError> {
    let (code, v) = admin.call("GET", "/readyz", None).await?;
    if code != 200 {
        return Err(fail(1, format!("not ready: {} answered {code}", admin.base)));
    }
    Ok(format!("{}\n", v["status"].as_str().unwrap_or("ready")))
}

/// `meridian reload`.
pub async fn reload(admin: &Admin) -> Result<String, CtlError> {
    let (code, v) = admin.call("POST", "/v1/reload", None).await?;
    if code != 200 {
        return Err(refused(code, &v));
    }
    Ok("reloaded\n".into())
}

/// `meridian endpoint disable|enable PROFILE ENDPOINT [--for D] [--reason R]`.
pub async fn set_endpoint(
    admin: &Admin,
    profile: &str,
    endpoint: &str,
    enabled: bool,
    expires_in: Option<&str>,
    reason: Option<&str>,
) -> Result<String, CtlError> {
    let mut body = serde_json::json!({ "enabled": enabled });
    if let Some(d) = expires_in {
        body["expires_in"] = d.into();
    }
    if let Some(r) = reason {
        body["reason"] = r.into();
    }
    let path = format!("/v1/profiles/{}/endpoints/{}", segment(profile), segment(endpoint));
    let (code, v) = admin.call("PUT", &path, Some(body.to_string())).await?;
    if code != 200 {
        return Err(refused(code, &v));
    }
    Ok(format!("{profile}/{endpoint}: {}\n", v["status"].as_str().unwrap_or("done")))
}

/// `meridian load push PROFILE ENDPOINT VALUE`.
pub async fn push_load(
    admin: &Admin,
    profile: &str,
    endpoint: &str,
    value: f64,
) -> Result<String, CtlError> {
    let path = format!("/v1/profiles/{}/endpoints/{}/load", segment(profile), segment(endpoint));
    let (code, v) =
        admin.call("PUT", &path, Some(serde_json::json!({ "value": value }).to_string())).await?;
    if code != 200 {
        return Err(refused(code, &v));
    }
    Ok(format!("{profile}/{endpoint}: load {value} recorded\n"))
}

/// A path segment, percent-encoded.
fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
