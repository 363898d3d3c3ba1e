//! The burst rule applied to a method's pick: which answers spill to an overflow endpoint,
//! within the geo-fence and the client's view.

use super::methods::client_regions;
use super::rng::{mix, prefix_hash, sticky_prefix};
use super::*;

/// The client prefix's place in `[0, 1)`: the same on every instance, so with a sticky burst
/// the same clients spill everywhere, and a client keeps its side while the share holds.
#[inline]
pub(super) fn sticky_unit(addr: IpAddr) -> f64 {
    let (prefix, _) = sticky_prefix(addr);
    const SEED: u64 = 0x6d65_7269_6469_616e;
    let h = prefix_hash(prefix, SEED, const { mix(SEED) });
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Applies the burst rule to the method's pick `id`. The pick passed the method's availability
/// check (or every endpoint is down and counted as up), so a primary pick is up: a primary
/// that is down reaches the overflow through [`overflow_pick`] directly, when the method picks
/// nothing.
pub(super) fn spill<T: Trace>(
    d: &mut Decision<'_, T>,
    pid: ProfileId,
    b: &ProfileBurst,
    id: EndpointId,
    depth: usize,
    who: &Eligible<'_>,
) -> EndpointId {
    let (signals, client) = (d.signals, d.client);
    if !b.primary.contains(&id) {
        return id;
    }
    let share = signals.burst_share(pid);
    // No share, no draw: a burst profile is idle most of the time, and then every answer stays
    // on the primary whatever a draw would say (it is never below 0).
    let draw =
        (share > 0.0).then(|| if b.sticky { sticky_unit(client.addr) } else { d.rng.unit() });
    let go = draw.is_some_and(|u| u < share);
    // With a sticky spill strictly between none and all, whether this client spills depends
    // on its prefix's hash: the answer holds for that prefix only, and the ECS scope must say
    // so, or a resolver's subnet cache would hand one client's side to all of its clients.
    if b.sticky && share > 0.0 && share < 1.0 {
        d.sel.scope = d.sel.scope.max(sticky_prefix(client.addr).1);
    }
    d.trace.note(depth, || {
        format!(
            "burst: state {}, share {:.3}, {}{}{}",
            signals.burst_state(pid).as_str(),
            share,
            draw.map_or("no draw".into(), |u| format!("draw {u:.3}")),
            if b.sticky && draw.is_some() { " (client-prefix hash)" } else { "" },
            if go { ": spilled" } else { ": kept on the primary" }
        )
    });
    // The controller's view (only when explaining: taking the lock is fine off the hot path).
    d.trace.note(depth, || {
        let detail = signals.profile(pid).burst();
        let Some(m) = detail.as_ref().map(|b| &b.machine) else {
            return "burst controller: no tick yet".into();
        };
        let f = |v: Option<f64>| v.map_or("unknown".to_string(), |v| format!("{v:.2}"));
        format!(
            "burst controller: estimated demand {} × the primary's capacity, resolvers hold share {}; {}",
            f(m.demand),
            f(m.held),
            if m.why.is_empty() { "no move yet" } else { &m.why }
        )
    });
    // Fleet mode: what the decision was taken from.
    if let Some(f) = &b.fleet {
        d.trace.note(depth, || {
            let head = format!(
                "burst fleet: decided as one fleet every {} at aligned instants, from {} (window {}, lag {})",
                humantime::format_duration(b.interval),
                f.url,
                humantime::format_duration(f.window),
                humantime::format_duration(f.lag)
            );
            let detail = signals.profile(pid).burst();
            let Some(v) = detail.as_ref().and_then(|b| b.fleet.as_ref()) else {
                return format!("{head}; no fleet tick yet");
            };
            let up = |u: Option<bool>| match u {
                Some(true) => "up",
                Some(false) => "down",
                None => "no report (own view)",
            };
            format!(
                "{head}; instant {}: {} points ({} with load), fleet share {}, primary {}, overflow {}; {}",
                humantime::format_rfc3339_seconds(v.instant),
                v.points,
                v.with_load,
                v.fleet_share.map_or("none".to_string(), |s| format!("{s:.3}")),
                up(v.primary_up),
                up(v.overflow_up),
                match &v.error {
                    None => "decided by the fleet".to_string(),
                    Some(e) => format!("decided locally: {e}"),
                }
            )
        });
    }
    if !go {
        return id;
    }
    match overflow_pick(d, pid, b, depth, draw.filter(|_| b.sticky), who) {
        Some(o) => o,
        None => {
            d.trace.note(depth, || {
                "burst: no overflow endpoint is available here; kept on the primary".into()
            });
            id
        }
    }
}

/// An available overflow endpoint the client may be sent to, weighted; `None` if there is none.
/// In a geographic profile only overflow endpoints mapped to one of the client's regions
/// qualify: a burst never crosses the geo-fence.
pub(super) fn overflow_pick<T>(
    d: &mut Decision<'_, T>,
    pid: ProfileId,
    b: &ProfileBurst,
    depth: usize,
    sticky_draw: Option<f64>,
    who: &Eligible<'_>,
) -> Option<EndpointId> {
    let (p, signals, client) = (d.p, d.signals, d.client);
    let profile = &p.profiles[pid as usize];
    let fenced = profile.method == Method::Geographic;
    let regions = if fenced {
        client_regions(client.geo.map_or(&crate::traffic::geo::GeoInfo::NONE, |g| g.record))
    } else {
        [None; 4]
    };
    // Neither the geo-fence nor the client's view may be crossed by a spill.
    let allowed = |id: EndpointId| {
        who.fits(id)
            && available(p, id, signals, depth)
            && (!fenced
                || p.endpoints[id as usize].regions.iter().any(|r| regions.contains(&Some(*r))))
    };
    // One pass over the overflow list decides who qualifies, kept here (an overflow list is a
    // few endpoints; a longer one is walked again instead).
    const KEPT: usize = 8;
    let (mut kept, mut n, mut total) = ([0 as EndpointId; KEPT], 0usize, 0u64);
    for o in b.overflow.iter().copied().filter(|&o| allowed(o)) {
        if n < KEPT {
            kept[n] = o;
        }
        n += 1;
        total += p.endpoints[o as usize].weight as u64;
    }
    if total == 0 {
        return None;
    }
    // Sticky: the same draw picks the same overflow endpoint; otherwise a fresh draw. When the
    // draw chooses between several candidates, the answer depends on the client prefix.
    let at = match sticky_draw {
        Some(u) => {
            if n > 1 {
                d.sel.scope = d.sel.scope.max(sticky_prefix(client.addr).1);
            }
            ((u * total as f64) as u64).min(total - 1)
        }
        None => d.rng.below(total),
    };
    if n <= KEPT {
        at_weight(p, kept[..n].iter().copied(), at)
    } else {
        at_weight(p, b.overflow.iter().copied().filter(|&o| allowed(o)), at)
    }
}

/// The sum of the endpoints' weights.
pub(super) fn total_weight(p: &Policies, ids: impl Iterator<Item = EndpointId>) -> u64 {
    ids.map(|id| p.endpoints[id as usize].weight as u64).sum()
}

/// With the endpoints' weights laid end to end, the one covering position `at`.
pub(super) fn at_weight(
    p: &Policies,
    mut ids: impl Iterator<Item = EndpointId>,
    at: u64,
) -> Option<EndpointId> {
    let mut acc = 0;
    ids.find(|&id| {
        acc += p.endpoints[id as usize].weight as u64;
        at < acc
    })
}
