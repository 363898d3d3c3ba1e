//! The routing methods that need more than a line: weighted (plain and sticky), geographic,
//! performance and subnet, and the views and regions a client is in.

use super::rng::{NEG_LN_ERROR, neg_ln, open_unit, prefix_hash, sticky_prefix};
use super::spill::{at_weight, total_weight};
use super::*;
use crate::traffic::geo::{self, Geo, GeoInfo, Region};

pub(super) fn weighted<T: Trace>(
    d: &mut Decision<'_, T>,
    profile: &Profile,
    depth: usize,
    who: &Eligible<'_>,
) -> Option<EndpointId> {
    let (p, client) = (d.p, d.client);
    let (rng, sel, trace) = (&mut *d.rng, &mut *d.sel, &mut *d.trace);
    if profile.sticky {
        // Weighted rendezvous hashing: each endpoint scores the client prefix; the best score
        // wins. Every instance computes the same scores, and when an endpoint goes away only
        // the clients it held move.
        let (prefix, len) = sticky_prefix(client.addr);
        sel.scope = sel.scope.max(len);
        let best = sticky_pick(profile, prefix, who);
        trace.note(depth, || {
            format!(
                "weighted, sticky by client prefix /{len}: rendezvous hash picks {}",
                best.map_or("nothing", |id| p.endpoints[id as usize].name.as_str())
            )
        });
        return best;
    }
    let (total, draw, pick) = if profile.endpoints.len() <= CANDIDATE_BATCH {
        // One pass asks each endpoint once whether it is available and lays the available
        // ones' weights end to end; the draw then picks from that, not from a second look at
        // live state that may have moved in between.
        let mut ends = [(0u64, 0 as EndpointId); CANDIDATE_BATCH];
        let (mut n, mut total) = (0, 0u64);
        for &id in profile.endpoints.iter() {
            if who.ok(id) {
                total += p.endpoints[id as usize].weight as u64;
                ends[n] = (total, id);
                n += 1;
            }
        }
        if total == 0 {
            return None;
        }
        let draw = rng.below(total);
        (total, draw, ends[..n].iter().find(|&&(end, _)| draw < end).map(|&(_, id)| id))
    } else {
        let candidates = || profile.endpoints.iter().copied().filter(|&id| who.ok(id));
        let total = total_weight(p, candidates());
        if total == 0 {
            return None;
        }
        let draw = rng.below(total);
        (total, draw, at_weight(p, candidates(), draw))
    };
    trace.note(depth, || {
        format!(
            "weighted: draw {draw} of total weight {total} picks {}",
            pick.map_or("nothing", |id| p.endpoints[id as usize].name.as_str())
        )
    });
    pick
}

/// The candidates a weighted or sticky choice gathers on the stack: enough for every profile
/// but the largest, which take the iterator path with the same result.
const CANDIDATE_BATCH: usize = 16;

/// Weighted rendezvous over the available endpoints of a sticky `profile` for the client
/// `prefix`. Each available endpoint's draw is laid out on the stack first and ranked in a
/// loop of its own, so that the endpoints' hash-and-logarithm chains (long and independent)
/// overlap instead of running one after another. (The availability check is inlined, so the
/// draws are taken in the same pass as it, without a list of candidates in between.)
fn sticky_pick(profile: &Profile, prefix: u128, who: &Eligible<'_>) -> Option<EndpointId> {
    let draw = |k: &StickyKey, id: EndpointId| {
        (k.weight, k.inv_weight, open_unit(prefix_hash(prefix, k.seed, k.seed_mixed)), id)
    };
    let keyed = profile.endpoints.iter().zip(profile.sticky_keys.iter());
    if profile.endpoints.len() > CANDIDATE_BATCH {
        return rendezvous(keyed.filter(|&(&id, _)| who.ok(id)).map(|(&id, k)| draw(k, id)));
    }
    let mut drawn = [(0.0, 0.0, 0.0, 0 as EndpointId); CANDIDATE_BATCH];
    let mut n = 0;
    for (&id, k) in keyed {
        if who.ok(id) {
            drawn[n] = draw(k, id);
            n += 1;
        }
    }
    rendezvous(drawn[..n].iter().copied())
}

/// Weighted rendezvous: of the candidates `(weight, 1/weight, draw in (0, 1], id)`, the one
/// with the highest `weight / −ln(draw)`, the first of equals. Ranked first by the inline
/// logarithm as `−ln(draw) · (1/weight)`, lowest first, keeping the runner-up: no division on
/// the query path, as `1/weight` does not depend on the hash and is computed at build. When
/// the winner leads by more than the error of both keys, libm's scores (what every version
/// has answered with) rank it first too. Closer than that, which is rare, they decide, so the
/// choice is libm's to the last bit.
pub(super) fn rendezvous(
    candidates: impl Iterator<Item = (f64, f64, f64, EndpointId)> + Clone,
) -> Option<EndpointId> {
    let mut best: Option<(f64, EndpointId)> = None;
    let mut second = f64::INFINITY;
    for (_, inv_w, u, id) in candidates.clone() {
        let key = neg_ln(u) * inv_w;
        match best {
            Some((k, _)) if key >= k => second = second.min(key),
            _ => {
                second = best.map_or(second, |(k, _)| k);
                best = Some((key, id));
            }
        }
    }
    // Each key is within NEG_LN_ERROR and two roundings of the exact one. A key that is not
    // positive and finite (a weight of 0, a draw of 1) also leaves the choice to libm's scores.
    let clear = |(k, _): (f64, EndpointId)| {
        k > 0.0 && k.is_finite() && k * (1.0 + 4.0 * NEG_LN_ERROR) < second
    };
    if best.is_some_and(|b| !clear(b)) {
        best = None;
        for (w, _, u, id) in candidates {
            let score = w / -u.ln();
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, id));
            }
        }
    }
    best.map(|(_, id)| id)
}

pub(super) fn geo_info<'g, T: Trace>(
    client: &Client<'g>,
    sel: &mut Selection,
    trace: &mut T,
    depth: usize,
) -> Option<Geo<'g>> {
    let geo = client.geo?;
    sel.scope = sel.scope.max(geo.prefix);
    trace.note(depth, || {
        let g = geo.record;
        if !g.found {
            return format!("GeoIP: no record for {} (network /{})", client.addr, geo.prefix);
        }
        let mut s = String::from("GeoIP:");
        if let Some(c) = g.country {
            s += &format!(" country {}", Region::Country(c));
        }
        if let Some(sd) = g.subdivision {
            s += &format!(", subdivision {}", Region::Subdivision(sd));
        }
        if let Some(gr) = g.group {
            s += &format!(", group {}", geo::GROUPS[gr as usize]);
        }
        if let Some(l) = g.location {
            s += &format!(
                ", location {:.2},{:.2}{}",
                l.lat,
                l.lon,
                if g.location_is_centroid { " (country centroid)" } else { "" }
            );
        }
        s + &format!(" (network /{})", geo.prefix)
    });
    Some(geo)
}

/// The view a client is in, for a profile with views (the caller checks, so that a profile
/// without them, most, does not copy the client address out as an argument); the decision's
/// scope grows to the matched view network, or to the widest block around the client that is
/// in no view.
pub(super) fn client_view(profile: &Profile, addr: IpAddr, sel: &mut Selection) -> Option<u8> {
    debug_assert!(!profile.views.is_empty());
    let mut closest_miss = 0u8;
    for (v, networks) in profile.views.iter().enumerate() {
        for c in networks.iter() {
            if c.contains(addr) {
                sel.scope = sel.scope.max(c.prefix);
                return Some(v as u8);
            }
            if let Some(common) = common_prefix(c.addr, addr) {
                closest_miss = closest_miss.max(common + 1);
            }
        }
    }
    let max = if addr.is_ipv4() { 32 } else { 128 };
    sel.scope = sel.scope.max(closest_miss.min(max));
    None
}

/// The regions a client is in, most specific first: subdivision, country, region group, WORLD.
pub(super) fn client_regions(g: &GeoInfo) -> [Option<Region>; 4] {
    [
        g.subdivision.map(Region::Subdivision),
        g.country.map(Region::Country),
        g.group.map(Region::Group),
        Some(Region::World),
    ]
}

pub(super) fn geographic<T: Trace>(
    d: &mut Decision<'_, T>,
    profile: &Profile,
    depth: usize,
    who: &Eligible<'_>,
) -> Option<EndpointId> {
    let (p, client) = (d.p, d.client);
    let (sel, trace) = (&mut *d.sel, &mut *d.trace);
    let g = geo_info(client, sel, trace, depth).map_or(&GeoInfo::NONE, |g| g.record);
    let map = &profile.geo_map;
    // The region search was done for every GeoIP record at snapshot build.
    let matched = match g.value.and_then(|v| profile.by_record.pick.get(v.get() as usize - 1)) {
        Some(&i) => map.get(i as usize).copied(),
        None => client_regions(g)
            .into_iter()
            .flatten()
            .find_map(|r| map.binary_search_by(|(k, _)| k.cmp(&r)).ok().map(|i| map[i])),
    };
    let Some((region, id)) = matched else {
        trace.note(depth, || {
            "geographic: no endpoint is mapped to the client's regions: NODATA".into()
        });
        return None;
    };
    if who.ok(id) {
        trace.note(depth, || {
            format!("geographic: region {region} is mapped to {}", p.endpoints[id as usize].name)
        });
        Some(id)
    } else {
        // Geo-fencing: no failover to another region's endpoint (a nested profile is how a
        // region gets failover).
        trace.note(depth, || format!("geographic: region {region} is mapped to {}, which is unavailable: NODATA (no failover across regions)", p.endpoints[id as usize].name));
        None
    }
}

pub(super) fn performance<T: Trace>(
    d: &mut Decision<'_, T>,
    profile: &Profile,
    depth: usize,
    who: &Eligible<'_>,
) -> Option<EndpointId> {
    let (p, client) = (d.p, d.client);
    let (sel, trace) = (&mut *d.sel, &mut *d.trace);
    let g = geo_info(client, sel, trace, depth).map(|g| g.record);
    let Some(here) = g.and_then(|g| g.location) else {
        trace.note(depth, || {
            "performance: no location for the client; falling back to weights".into()
        });
        return None;
    };
    // The distances from every GeoIP record to every endpoint were computed at snapshot build,
    // and, where no two are a tie, the order they put the endpoints in: then the nearest
    // available endpoint is the answer, found without a scan. An explanation scans, to list
    // each distance.
    let n = profile.endpoints.len();
    let rows = g.and_then(|g| g.value).map(|v| (v.get() as usize - 1) * n..v.get() as usize * n);
    let order = rows.clone().and_then(|r| profile.by_record.nearest.get(r));
    if let Some(order) = order.filter(|o| !T::TRACES && o.first() != Some(&NEAREST_SCAN)) {
        return order
            .iter()
            .take_while(|&&pos| pos != NEAREST_END)
            .map(|&pos| profile.endpoints[pos as usize])
            .find(|&id| who.ok(id));
    }
    let row = rows.and_then(|r| profile.by_record.distances.get(r));
    let mut best: Option<(f64, u32, EndpointId)> = None;
    for (pos, &id) in profile.endpoints.iter().enumerate() {
        if !who.ok(id) {
            continue;
        }
        let e = &p.endpoints[id as usize];
        let Some(loc) = e.location else { continue };
        let d = match row {
            Some(r) => r[pos],
            None => geo::distance_km(here, loc),
        };
        trace.note(depth + 1, || format!("{}: {d:.0} km", e.name));
        // Ties (within a kilometre) go to the higher weight.
        let better = match best {
            None => true,
            Some((bd, bw, _)) => d < bd - 1.0 || ((d - bd).abs() <= 1.0 && e.weight > bw),
        };
        if better {
            best = Some((d, e.weight, id));
        }
    }
    trace.note(depth, || {
        format!(
            "performance: nearest is {}",
            best.map_or("nothing", |b| p.endpoints[b.2 as usize].name.as_str())
        )
    });
    best.map(|b| b.2)
}

pub(super) fn subnet<T: Trace>(
    d: &mut Decision<'_, T>,
    profile: &Profile,
    depth: usize,
    who: &Eligible<'_>,
) -> Option<EndpointId> {
    let (p, client) = (d.p, d.client);
    let (sel, trace) = (&mut *d.sel, &mut *d.trace);
    let mut best: Option<(Cidr, EndpointId)> = None;
    let mut closest_miss = 0u8;
    let addr = client.addr;
    for &(cidr, id) in profile.subnet_rules.iter() {
        // One comparison per rule: the bits the client shares with the rule's network say
        // both whether it matches and, when not, how far the answer's scope must reach.
        match common_prefix(cidr.addr, addr) {
            Some(c) if c < cidr.prefix => closest_miss = closest_miss.max(c + 1),
            Some(_) if best.is_none_or(|(b, _)| cidr.prefix > b.prefix) => best = Some((cidr, id)),
            _ => {}
        }
    }
    match best {
        Some((cidr, id)) => {
            sel.scope = sel.scope.max(cidr.prefix);
            if who.ok(id) {
                trace.note(depth, || {
                    format!(
                        "subnet: {} matches {cidr} of {}",
                        client.addr, p.endpoints[id as usize].name
                    )
                });
                return Some(id);
            }
            trace.note(depth, || {
                format!(
                    "subnet: {cidr} of {} matches but it is unavailable",
                    p.endpoints[id as usize].name
                )
            });
        }
        None => {
            // The answer holds for the client's block that overlaps no rule.
            let max = if client.addr.is_ipv4() { 32 } else { 128 };
            sel.scope = sel.scope.max(closest_miss.min(max));
            trace.note(depth, || format!("subnet: no rule matches {}", client.addr));
        }
    }
    match profile.subnet_fallback.filter(|&id| who.ok(id)) {
        Some(id) => {
            trace.note(depth, || {
                format!("subnet: using the fallback endpoint {}", p.endpoints[id as usize].name)
            });
            Some(id)
        }
        None => {
            trace.note(depth, || "subnet: no available fallback endpoint: NODATA".into());
            None
        }
    }
}
