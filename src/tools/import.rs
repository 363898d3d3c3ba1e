//! `meridian import azure FILE.json`: an exported Azure Traffic Manager profile (ARM template or
//! REST/CLI JSON) turned into a `meridian.toml` section, with a list of everything that could
//! not be carried over. The way off a managed service onto your own machines.

use serde_json::Value;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The TOML text and what was left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    pub warnings: Vec<String>,
}

/// Converts every Traffic Manager profile found in `json`: an ARM template (`resources`), a
/// list, or one profile object.
pub fn azure(json: &str) -> Result<Imported, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let profiles: Vec<&Value> = match &v {
        Value::Object(o) if o.contains_key("resources") => {
            v["resources"].as_array().into_iter().flatten().filter(|r| is_profile(r)).collect()
        }
        Value::Array(a) => a.iter().filter(|r| is_profile(r)).collect(),
        Value::Object(_) if is_profile(&v) => vec![&v],
        _ => Vec::new(),
    };
    if profiles.is_empty() {
        return Err("no Traffic Manager profile (type Microsoft.Network/trafficManagerProfiles) in the file".into());
    }
    let mut out = Imported { toml: String::new(), warnings: Vec::new() };
    let _ = writeln!(
        out.toml,
        "# Imported from Azure Traffic Manager by `meridian import azure`.\n# Profile names are relative to the zone that will serve them: adjust them to your zone."
    );
    // A nested endpoint names its child by resource name; the child is written under the
    // name it is served as (its DNS relative name), so references go through this map.
    let names: Vec<(String, String)> =
        profiles.iter().map(|p| (plain_name(&p["name"]), profile_name(p))).collect();
    for p in &profiles {
        profile(p, &names, &mut out);
    }
    Ok(out)
}

fn is_profile(v: &Value) -> bool {
    v["type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("Microsoft.Network/trafficManagerProfiles"))
        || props(v)["trafficRoutingMethod"].is_string()
}

/// ARM templates and the REST API nest a resource's settings under `properties`; the Azure
/// CLI prints them flattened. Either is accepted.
fn props(v: &Value) -> &Value {
    if v["properties"].is_object() { &v["properties"] } else { v }
}

/// A TOML string literal.
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// An ARM name may be an expression (`[parameters('name')]`): keep the last plain word.
fn plain_name(v: &Value) -> String {
    let raw = v.as_str().unwrap_or("profile");
    let raw = raw.rsplit('/').next().unwrap_or(raw);
    raw.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_').to_string()
}

/// The resource name at the end of a resource id: `/subscriptions/…/trafficManagerProfiles/x`,
/// or an ARM template's `[resourceId('Microsoft.Network/trafficManagerProfiles', 'x')]`.
fn resource_name(id: &str) -> String {
    let id = id.trim();
    if id.starts_with('[')
        && let Some(args) = id.split_once("resourceId(").map(|(_, a)| a)
        && let Some(last) = args.rsplit(',').next()
    {
        return plain_name(&Value::String(last.trim_end_matches([')', ']', ' ']).to_string()));
    }
    id.rsplit('/').next().unwrap_or(id).to_string()
}

/// The name a profile is served under: its DNS relative name, else its resource name.
fn profile_name(p: &Value) -> String {
    props(p)["dnsConfig"]["relativeName"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| plain_name(&p["name"]))
}

fn profile(p: &Value, imported: &[(String, String)], out: &mut Imported) {
    let props = props(p);
    let name = profile_name(p);
    let method = match props["trafficRoutingMethod"].as_str().unwrap_or("") {
        "Priority" => "priority",
        "Weighted" => "weighted",
        "Geographic" => "geographic",
        "Performance" => "performance",
        "MultiValue" => "multivalue",
        "Subnet" => "subnet",
        other => {
            out.warnings
                .push(format!("{name}: routing method {other:?} is unknown; written as priority"));
            "priority"
        }
    };
    let t = &mut out.toml;
    let _ = writeln!(t, "\n[[profile]]\nname = {}\nmethod = \"{method}\"", q(&name));
    if let Some(ttl) = props["dnsConfig"]["ttl"].as_u64() {
        let _ = writeln!(t, "ttl = {ttl}");
    }
    if method == "multivalue"
        && let Some(m) = props["maxReturn"].as_u64()
    {
        let _ = writeln!(t, "max_answers = {}", m.clamp(1, 10));
    }
    if props["profileStatus"].as_str() == Some("Disabled") {
        out.warnings.push(format!(
            "{name}: the profile is Disabled in Azure; Meridian serves every profile it is given"
        ));
    }
    if props["trafficViewEnrollmentStatus"].as_str() == Some("Enabled") {
        out.warnings.push(format!(
            "{name}: Traffic View has no equivalent (use Meridian's metrics and query log)"
        ));
    }
    if let Some(types) = props["allowedEndpointRecordTypes"].as_array() {
        out.warnings.push(format!("{name}: allowedEndpointRecordTypes {types:?} is not carried over (Meridian answers A, AAAA and CNAME by endpoint kind)"));
    }
    let m = &props["monitorConfig"];
    if m.is_object() {
        monitor(m, &name, out);
    }
    for e in props["endpoints"].as_array().into_iter().flatten() {
        endpoint(e, &name, method, imported, out);
    }
}

fn monitor(m: &Value, name: &str, out: &mut Imported) {
    let t = &mut out.toml;
    let _ = writeln!(t, "\n[profile.monitor]");
    let protocol = m["protocol"].as_str().unwrap_or("HTTP").to_ascii_lowercase();
    let _ = writeln!(t, "protocol = {}", q(&protocol));
    if let Some(port) = m["port"].as_u64() {
        let _ = writeln!(t, "port = {port}");
    }
    if let Some(path) = m["path"].as_str().filter(|_| protocol != "tcp") {
        let _ = writeln!(t, "path = {}", q(path));
    }
    if let Some(i) = m["intervalInSeconds"].as_u64() {
        let _ = writeln!(t, "interval = \"{i}s\"");
    }
    if let Some(i) = m["timeoutInSeconds"].as_u64() {
        let _ = writeln!(t, "timeout = \"{i}s\"");
    }
    if let Some(f) = m["toleratedNumberOfFailures"].as_u64() {
        let _ = writeln!(t, "tolerated_failures = {}", f.min(9));
    }
    if let Some(ranges) = m["expectedStatusCodeRanges"].as_array().filter(|r| !r.is_empty()) {
        let list: Vec<String> = ranges
            .iter()
            .map(|r| {
                q(&format!(
                    "{}-{}",
                    r["min"].as_u64().unwrap_or(200),
                    r["max"].as_u64().unwrap_or(299)
                ))
            })
            .collect();
        let _ = writeln!(t, "expected_status = [{}]", list.join(", "));
    }
    if let Some(h) = headers(&m["customHeaders"]) {
        let _ = writeln!(t, "headers = {h}");
    }
    if m["protocol"]
        .as_str()
        .is_some_and(|p| !["HTTP", "HTTPS", "TCP"].contains(&p.to_ascii_uppercase().as_str()))
    {
        out.warnings.push(format!(
            "{name}: monitor protocol {} is not supported; written as it is, fix it by hand",
            m["protocol"]
        ));
    }
}

/// Custom headers as an inline TOML table.
fn headers(v: &Value) -> Option<String> {
    let list = v.as_array().filter(|a| !a.is_empty())?;
    let pairs: Vec<String> = list
        .iter()
        .filter_map(|h| Some(format!("{} = {}", q(h["name"].as_str()?), q(h["value"].as_str()?))))
        .collect();
    Some(format!("{{ {} }}", pairs.join(", ")))
}

fn endpoint(
    e: &Value,
    profile: &str,
    method: &str,
    imported: &[(String, String)],
    out: &mut Imported,
) {
    let props = props(e);
    let name = plain_name(&e["name"]);
    let kind = e["type"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("").to_string();
    let mut lines = format!("\n[[profile.endpoint]]\nname = {}\n", q(&name));
    // An endpoint that cannot be given a target is written out commented, so that the rest
    // loads as it is and the operator sees what to complete.
    let mut commented = false;
    let target = props["target"].as_str();
    if kind.eq_ignore_ascii_case("nestedEndpoints") {
        let child = props["targetResourceId"].as_str().map(resource_name);
        match child {
            Some(resource) => {
                let known =
                    imported.iter().find(|(r, served)| *r == resource || *served == resource);
                let c = known.map_or_else(|| resource.clone(), |(_, served)| served.clone());
                let _ = writeln!(lines, "profile = {}", q(&c));
                if let Some(n) = props["minChildEndpoints"].as_u64() {
                    let _ = writeln!(lines, "min_child_endpoints = {}", n.max(1));
                }
                for (key, field) in [
                    ("min_child_ipv4", "minChildEndpointsIPv4"),
                    ("min_child_ipv6", "minChildEndpointsIPv6"),
                ] {
                    if let Some(n) = props[field].as_u64() {
                        let _ = writeln!(lines, "{key} = {n}");
                    }
                }
                if known.is_none() {
                    out.warnings.push(format!(
                        "{profile}/{name}: nested profile {c:?} is not in this file: import it too"
                    ));
                }
            }
            None => {
                out.warnings.push(format!("{profile}/{name}: a nested endpoint without targetResourceId cannot be imported; skipped"));
                return;
            }
        }
    } else {
        match target {
            Some(t) if t.parse::<IpAddr>().is_ok() => {
                let _ = writeln!(lines, "address = {}", q(t));
            }
            Some(t) => {
                if method == "multivalue" {
                    out.warnings.push(format!("{profile}/{name}: multivalue endpoints must be addresses; {t:?} is a name: replace it with its addresses"));
                }
                let _ = writeln!(lines, "cname = {}", q(t));
            }
            None => {
                out.warnings.push(format!(
                    "{profile}/{name}: no target (an Azure endpoint known only by its resource id); give it an address or cname by hand"
                ));
                let _ = writeln!(
                    lines,
                    "address = \"...\"   # Azure resource: {}",
                    props["targetResourceId"].as_str().unwrap_or("unknown")
                );
                commented = true;
            }
        }
    }
    if props["endpointStatus"].as_str() == Some("Disabled") {
        let _ = writeln!(lines, "enabled = false");
    }
    if let Some(p) = props["priority"].as_u64().filter(|_| method == "priority") {
        let _ = writeln!(lines, "priority = {p}");
    }
    if let Some(w) =
        props["weight"].as_u64().filter(|_| matches!(method, "weighted" | "performance"))
    {
        let _ = writeln!(lines, "weight = {}", w.clamp(1, 1000));
    }
    if let Some(loc) = props["endpointLocation"].as_str().filter(|_| method == "performance") {
        let region = loc.to_ascii_lowercase().replace([' ', '-'], "");
        if crate::traffic::geo::known_location(&region).is_some() {
            let _ = writeln!(lines, "location = {}", q(&region));
        } else {
            out.warnings.push(format!("{profile}/{name}: location {loc:?} is not a known region; give [latitude, longitude]"));
            let _ = writeln!(lines, "# location = [latitude, longitude]   ({loc})");
        }
    }
    if let Some(geo) = props["geoMapping"].as_array().filter(|_| method == "geographic") {
        let codes: Vec<String> = geo.iter().filter_map(|g| g.as_str()).map(q).collect();
        let _ = writeln!(lines, "geo = [{}]", codes.join(", "));
    }
    if let Some(subnets) = props["subnets"].as_array().filter(|_| method == "subnet") {
        let mut cidrs = Vec::new();
        for s in subnets {
            match (s["first"].as_str(), s["scope"].as_u64(), s["last"].as_str()) {
                (Some(first), Some(scope), _) => cidrs.push(format!("{first}/{scope}")),
                (Some(first), None, Some(last)) => match range_to_cidrs(first, last) {
                    Some(list) => cidrs.extend(list),
                    None => out.warnings.push(format!(
                        "{profile}/{name}: subnet range {first}-{last} is not valid; skipped"
                    )),
                },
                (Some(first), None, None) => {
                    cidrs.push(format!("{first}/{}", if first.contains(':') { 128 } else { 32 }))
                }
                _ => out
                    .warnings
                    .push(format!("{profile}/{name}: a subnet without \"first\"; skipped")),
            }
        }
        let list: Vec<String> = cidrs.iter().map(|c| q(c)).collect();
        let _ = writeln!(lines, "subnets = [{}]", list.join(", "));
    }
    let always_serve = props["alwaysServe"].as_str() == Some("Enabled");
    let endpoint_headers = headers(&props["customHeaders"]);
    if always_serve {
        let _ = writeln!(lines, "monitor = false   # AlwaysServe in Azure");
    } else if let Some(h) = endpoint_headers {
        let _ = writeln!(lines, "[profile.endpoint.monitor]\nheaders = {h}");
    }
    if commented {
        lines = lines
            .lines()
            .map(|l| if l.is_empty() { String::new() } else { format!("# {l}") })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
    }
    out.toml.push_str(&lines);
}

/// The smallest list of CIDR blocks covering `first..=last`.
fn range_to_cidrs(first: &str, last: &str) -> Option<Vec<String>> {
    let (a, b): (IpAddr, IpAddr) = (first.parse().ok()?, last.parse().ok()?);
    let (lo, hi, width, v4) = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32u32, true),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128u32, false),
        _ => return None,
    };
    if lo > hi {
        return None;
    }
    let mut out = Vec::new();
    let mut cur = lo;
    loop {
        // The largest aligned block starting at `cur` that does not pass `hi`.
        let mut size = if cur == 0 { width } else { cur.trailing_zeros().min(width) };
        while size > 0
            && (size >= 128 || cur.checked_add((1u128 << size) - 1).is_none_or(|end| end > hi))
        {
            size -= 1;
        }
        let addr = if v4 {
            IpAddr::V4(Ipv4Addr::from(cur as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(cur))
        };
        out.push(format!("{addr}/{}", width - size));
        let next = cur.checked_add(1u128 << size)?;
        if next > hi || (v4 && next > u32::MAX as u128) {
            break;
        }
        cur = next;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_cidrs() {
        assert_eq!(range_to_cidrs("10.0.0.0", "10.0.0.255").unwrap(), ["10.0.0.0/24"]);
        assert_eq!(
            range_to_cidrs("10.0.0.1", "10.0.0.6").unwrap(),
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert_eq!(range_to_cidrs("0.0.0.0", "255.255.255.255").unwrap(), ["0.0.0.0/0"]);
        assert_eq!(range_to_cidrs("2001:db8::", "2001:db8::ffff").unwrap(), ["2001:db8::/112"]);
        assert!(range_to_cidrs("10.0.0.9", "10.0.0.1").is_none());
    }

    #[test]
    fn resource_ids_and_arm_expressions_name_the_child() {
        for (id, want) in [
            (
                "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/trafficManagerProfiles/eu",
                "eu",
            ),
            (
                "[resourceId('Microsoft.Network/trafficManagerProfiles', 'contoso-api')]",
                "contoso-api",
            ),
            ("[resourceId('rg', 'Microsoft.Network/trafficManagerProfiles', 'child')]", "child"),
            ("plain", "plain"),
        ] {
            assert_eq!(resource_name(id), want, "{id}");
        }
    }
}
