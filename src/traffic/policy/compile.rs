//! From the configuration model to the tables `select` reads: dense ids, priority order, the
//! geographic map sorted by region, subnet rules. Runs when a snapshot is built, never per
//! query.

use super::rng::mix;
use super::{Cidr, Endpoint, Policies, Profile, Target, stable_hash};
use crate::config::{Config, TargetConfig};
use crate::live::EndpointKey;
use std::net::IpAddr;

/// Compiles every profile of a validated configuration. Profile ids are their positions in
/// `config.profiles`; endpoint ids are dense across all profiles, in configuration order.
pub fn compile(config: &Config) -> Policies {
    let mut endpoints = Vec::new();
    let mut profiles = Vec::with_capacity(config.profiles.len());
    for (pid, pc) in config.profiles.iter().enumerate() {
        let first = endpoints.len() as u32;
        for ec in &pc.endpoints {
            let target = match &ec.target {
                TargetConfig::Addresses(addrs) => Target::Addresses {
                    v4: addrs
                        .iter()
                        .filter_map(|a| match a {
                            IpAddr::V4(v) => Some(*v),
                            _ => None,
                        })
                        .collect(),
                    v6: addrs
                        .iter()
                        .filter_map(|a| match a {
                            IpAddr::V6(v) => Some(*v),
                            _ => None,
                        })
                        .collect(),
                },
                // Lowercased: the target is also a lookup key when it lies in our own zone.
                TargetConfig::Cname(n) => Target::Cname(n.to_lowercase()),
                TargetConfig::Profile(child) => Target::Profile(*child as u32),
            };
            // The same bytes on every instance and version: sticky choices depend on it.
            let key_hash = stable_hash(format!("{}/{}", pc.name, ec.name).as_bytes());
            endpoints.push(Endpoint {
                name: ec.name.clone(),
                profile: pid as u32,
                target,
                priority: ec.priority,
                weight: ec.weight,
                regions: ec.regions.clone().into(),
                location: ec.location,
                subnets: ec.subnets.clone().into(),
                enabled: ec.enabled,
                min_child_endpoints: ec.min_child_endpoints,
                min_child_ipv4: ec.min_child_ipv4,
                min_child_ipv6: ec.min_child_ipv6,
                view_targets: ec
                    .view_addresses
                    .iter()
                    .map(|(v, addrs)| {
                        let v4 = addrs
                            .iter()
                            .filter_map(|a| match a {
                                IpAddr::V4(x) => Some(*x),
                                _ => None,
                            })
                            .collect();
                        let v6 = addrs
                            .iter()
                            .filter_map(|a| match a {
                                IpAddr::V6(x) => Some(*x),
                                _ => None,
                            })
                            .collect();
                        (*v as u8, v4, v6)
                    })
                    .collect(),
                monitor: ec.monitor.clone(),
                load: ec.load.clone(),
                key: EndpointKey::new(pc.name.clone(), &ec.name),
                key_hash,
            });
        }
        let ids: Vec<u32> = (first..endpoints.len() as u32).collect();
        let mut by_priority = ids.clone();
        by_priority.sort_by_key(|&id| (endpoints[id as usize].priority, id));
        let mut geo_map: Vec<_> = ids
            .iter()
            .flat_map(|&id| endpoints[id as usize].regions.iter().map(move |&r| (r, id)))
            .collect();
        geo_map.sort_by_key(|&(r, _)| r);
        let subnet_rules: Vec<(Cidr, u32)> = ids
            .iter()
            .flat_map(|&id| endpoints[id as usize].subnets.iter().map(move |&c| (c, id)))
            .collect();
        let subnet_fallback =
            ids.iter().copied().find(|&id| endpoints[id as usize].subnets.is_empty());
        let burst = pc.burst.as_ref().map(|b| super::ProfileBurst {
            primary: b.primary.iter().map(|&i| first + i as u32).collect(),
            overflow: b.overflow.iter().map(|&i| first + i as u32).collect(),
            sticky: b.sticky,
            transition_ttl: b.transition_ttl,
            rule: b.rule,
            interval: b.interval,
            on_warm: b.on_warm.clone(),
            on_idle: b.on_idle.clone(),
            fleet: b.fleet.clone(),
        });
        let sticky_keys = match pc.sticky {
            true => ids
                .iter()
                .map(|&id| {
                    let e = &endpoints[id as usize];
                    let weight = e.weight as f64;
                    super::StickyKey {
                        seed: e.key_hash,
                        seed_mixed: mix(e.key_hash),
                        weight,
                        inv_weight: 1.0 / weight,
                    }
                })
                .collect(),
            false => Box::default(),
        };
        profiles.push(Profile {
            name: pc.name.clone(),
            method: pc.method,
            ttl: pc.ttl,
            endpoints: ids.into(),
            when_all_down: pc.when_all_down,
            max_answers: pc.max_answers,
            sticky: pc.sticky,
            needs_geo: false,
            by_priority: by_priority.into(),
            geo_map: geo_map.into(),
            subnet_rules: subnet_rules.into(),
            subnet_fallback,
            burst,
            views: pc.views.iter().map(|v| v.networks.clone().into_boxed_slice()).collect(),
            view_names: pc.views.iter().map(|v| v.name.as_str().into()).collect(),
            by_record: Default::default(),
            sticky_keys,
        });
    }
    // A profile needs GeoIP if it, or any profile nested below it, routes by location.
    // Nesting is loop-free and bounded (validated), so a fixed number of passes settles it.
    for p in profiles.iter_mut() {
        p.needs_geo = p.method.uses_geo();
    }
    for _ in 0..super::MAX_DEPTH {
        for i in 0..profiles.len() {
            let nested =
                profiles[i].endpoints.iter().any(|&id| match endpoints[id as usize].target {
                    Target::Profile(c) => profiles[c as usize].needs_geo,
                    _ => false,
                });
            profiles[i].needs_geo |= nested;
        }
    }
    let by_key = endpoints.iter().enumerate().map(|(i, e)| (e.key.clone(), i as u32)).collect();
    let by_name =
        profiles.iter().enumerate().map(|(i, p)| (p.name.to_lowercase(), i as u32)).collect();
    Policies { profiles: profiles.into(), endpoints: endpoints.into(), by_key, by_name }
}

/// The most table entries one profile's per-record table may have (8 bytes each): a country
/// database has a few hundred records, a city database can have a hundred thousand; past this
/// the query computes what the table would hold.
const MAX_BY_RECORD: usize = 4 << 20;

/// Derives what geographic and performance profiles need from each of the database's
/// distinct records (`Profile::by_record`).
pub fn compile_geo(policies: &mut Policies, geo: &crate::traffic::geo::GeoDb) {
    let records = geo.values();
    for i in 0..policies.profiles.len() {
        let p = &policies.profiles[i];
        let by = match p.method {
            super::Method::Geographic if records.len() <= MAX_BY_RECORD => {
                let pick = records
                    .iter()
                    .map(|g| {
                        super::methods::client_regions(g)
                            .into_iter()
                            .flatten()
                            .find_map(|r| p.geo_map.binary_search_by(|(k, _)| k.cmp(&r)).ok())
                            .map_or(super::NO_PICK, |i| i as u32)
                    })
                    .collect();
                super::ByRecord { pick, ..Default::default() }
            }
            super::Method::Performance
                if records.len() * p.endpoints.len().max(1) <= MAX_BY_RECORD
                    && p.endpoints.len() < super::NEAREST_SCAN as usize =>
            {
                let n = p.endpoints.len();
                let mut distances = Vec::with_capacity(records.len() * n);
                let mut nearest = Vec::with_capacity(records.len() * n);
                let mut row: Vec<(f64, u16)> = Vec::with_capacity(n);
                for g in records {
                    row.clear();
                    for (pos, &id) in p.endpoints.iter().enumerate() {
                        let e = &policies.endpoints[id as usize];
                        let d = match (g.location, e.location) {
                            (Some(here), Some(there)) => {
                                crate::traffic::geo::distance_km(here, there)
                            }
                            _ => f64::NAN,
                        };
                        distances.push(d);
                        if e.location.is_some() {
                            row.push((d, pos as u16));
                        }
                    }
                    // With every two more than a kilometre apart (and none NaN), the scan's
                    // choice among any available subset is the nearest available one. The
                    // half kilometre more keeps roundings from deciding which rule applies.
                    row.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let distinct = row.iter().all(|r| !r.0.is_nan())
                        && row.windows(2).all(|w| w[1].0 - w[0].0 > 1.5);
                    let start = nearest.len();
                    if distinct {
                        nearest.extend(row.iter().map(|r| r.1));
                    } else {
                        nearest.push(super::NEAREST_SCAN);
                    }
                    nearest.resize(start + n, super::NEAREST_END);
                }
                super::ByRecord {
                    distances: distances.into(),
                    nearest: nearest.into(),
                    ..Default::default()
                }
            }
            _ => continue,
        };
        policies.profiles[i].by_record = by;
    }
}
