//! The API's handlers that change state: overrides, pushed load; and their expiry.

use super::*;

/// The longest override expiry accepted: a year. Longer is "until cleared", which is what
/// leaving `expires_in` out says.
pub(super) const MAX_EXPIRY: Duration = Duration::from_secs(366 * 24 * 3600);

/// The endpoint a request names, or the 404 that says what is missing.
pub(super) fn find_endpoint(
    snap: &Snapshot,
    profile: &str,
    endpoint: &str,
) -> Result<u32, Response> {
    let Some(pid) = snap.policies.profile_by_name(profile) else {
        return Err(error(404, format!("no profile {profile:?}")));
    };
    snap.policies
        .endpoint_in(pid, endpoint)
        .ok_or_else(|| error(404, format!("profile {profile:?} has no endpoint {endpoint:?}")))
}

pub(super) fn set_override(ctx: &Context, profile: &str, endpoint: &str, body: &[u8]) -> Response {
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

pub(super) fn push_load(ctx: &Context, profile: &str, endpoint: &str, body: &[u8]) -> Response {
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
