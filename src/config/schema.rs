//! The TOML schema: what `meridian.toml` may say, as serde types that keep every value's
//! position. Unknown keys are rejected everywhere. Nothing here checks meaning; `validate`
//! does, and only `validate` sees these types.

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) server: Option<RawServer>,
    #[serde(default, rename = "zone")]
    pub(super) zones: Vec<RawZone>,
    pub(super) geoip: Option<RawGeoIp>,
    #[serde(default, rename = "profile")]
    pub(super) profiles: Vec<RawProfile>,
    pub(super) admin: Option<RawAdmin>,
    pub(super) fleet: Option<Spanned<RawFleetShared>>,
    #[serde(default, rename = "key")]
    pub(super) keys: Vec<Spanned<RawKey>>,
}

/// `[[key]]`: a TSIG key, or every key of a BIND key file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) name: Option<Spanned<String>>,
    pub(super) algorithm: Option<Spanned<String>>,
    pub(super) secret_env: Option<Spanned<String>>,
    pub(super) secret_file: Option<Spanned<String>>,
    pub(super) bind_file: Option<Spanned<String>>,
}

/// `[fleet]`: the Prometheus a fleet of instances shares, for health by consensus.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleetShared {
    pub(super) prometheus: Spanned<String>,
    #[serde(rename = "match")]
    pub(super) matchers: Option<Spanned<String>>,
    pub(super) lag: Option<Spanned<String>>,
    pub(super) client: Option<Spanned<RawClient>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) enabled: Option<bool>,
    pub(super) listen: Option<Spanned<String>>,
    pub(super) token: Option<Spanned<String>>,
    pub(super) token_env: Option<Spanned<String>>,
    pub(super) token_file: Option<Spanned<String>>,
    pub(super) tls_cert: Option<Spanned<String>>,
    pub(super) tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGeoIp {
    pub(super) database: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub(super) name: Spanned<String>,
    pub(super) method: Spanned<String>,
    pub(super) ttl: Option<Spanned<i64>>,
    pub(super) max_answers: Option<Spanned<i64>>,
    pub(super) sticky: Option<Spanned<String>>,
    pub(super) when_all_down: Option<Spanned<String>>,
    pub(super) monitor: Option<Spanned<RawMonitor>>,
    pub(super) burst: Option<Spanned<RawBurst>>,
    #[serde(default, rename = "view")]
    pub(super) views: Vec<RawView>,
    #[serde(default, rename = "endpoint")]
    pub(super) endpoints: Vec<RawEndpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    pub(super) name: Spanned<String>,
    pub(super) address: Option<Spanned<toml::Value>>,
    pub(super) cname: Option<Spanned<String>>,
    pub(super) profile: Option<Spanned<String>>,
    pub(super) priority: Option<Spanned<i64>>,
    pub(super) weight: Option<Spanned<i64>>,
    pub(super) geo: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) location: Option<Spanned<toml::Value>>,
    pub(super) subnets: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) enabled: Option<bool>,
    pub(super) min_child_endpoints: Option<Spanned<i64>>,
    pub(super) min_child_ipv4: Option<Spanned<i64>>,
    pub(super) min_child_ipv6: Option<Spanned<i64>>,
    pub(super) monitor: Option<Spanned<EndpointMonitor>>,
    pub(super) load: Option<Spanned<RawLoad>>,
    pub(super) views: Option<Spanned<toml::Table>>,
}

/// `[profile.monitor]`, or an endpoint's table of keys overriding it.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMonitor {
    pub(super) protocol: Option<Spanned<String>>,
    pub(super) port: Option<Spanned<i64>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) tolerated_failures: Option<Spanned<i64>>,
    pub(super) recover_after: Option<Spanned<i64>>,
    pub(super) expected_status: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) headers: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    pub(super) verify_tls: Option<Spanned<bool>>,
    pub(super) consensus: Option<Spanned<String>>,
}

impl RawMonitor {
    /// The endpoint's keys over the profile's.
    pub(super) fn over(self, base: RawMonitor) -> RawMonitor {
        RawMonitor {
            protocol: self.protocol.or(base.protocol),
            port: self.port.or(base.port),
            path: self.path.or(base.path),
            interval: self.interval.or(base.interval),
            timeout: self.timeout.or(base.timeout),
            tolerated_failures: self.tolerated_failures.or(base.tolerated_failures),
            recover_after: self.recover_after.or(base.recover_after),
            expected_status: self.expected_status.or(base.expected_status),
            headers: self.headers.or(base.headers),
            verify_tls: self.verify_tls.or(base.verify_tls),
            consensus: self.consensus.or(base.consensus),
        }
    }
}

/// An endpoint's `monitor`: `false` (not probed), `true` (the profile's), or a table of keys
/// overriding the profile's. A hand-written `Deserialize`: an untagged enum would lose the
/// positions `Spanned` keeps for the table's keys.
#[derive(Clone)]
pub(super) enum EndpointMonitor {
    Off,
    Inherit,
    Table(Box<RawMonitor>),
}

impl<'de> Deserialize<'de> for EndpointMonitor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = EndpointMonitor;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("false, true, or a table of monitor keys")
            }
            fn visit_bool<E>(self, b: bool) -> Result<EndpointMonitor, E> {
                Ok(if b { EndpointMonitor::Inherit } else { EndpointMonitor::Off })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<EndpointMonitor, A::Error> {
                RawMonitor::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|m| EndpointMonitor::Table(Box::new(m)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[profile.endpoint.load]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoad {
    pub(super) source: Spanned<String>,
    pub(super) capacity: Option<Spanned<f64>>,
    pub(super) url: Option<Spanned<String>>,
    pub(super) json_pointer: Option<Spanned<String>>,
    pub(super) metric: Option<Spanned<String>>,
    pub(super) labels: Option<std::collections::BTreeMap<String, String>>,
    pub(super) query: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) half_life: Option<Spanned<String>>,
    pub(super) stale_after: Option<Spanned<String>>,
    pub(super) client: Option<Spanned<RawClient>>,
}

/// `client = { ... }` of a load source or webhook: TLS, credentials, headers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    pub(super) ca_file: Option<Spanned<String>>,
    pub(super) client_cert: Option<Spanned<String>>,
    pub(super) client_key: Option<Spanned<String>>,
    pub(super) verify_tls: Option<bool>,
    pub(super) bearer_token_env: Option<Spanned<String>>,
    pub(super) bearer_token_file: Option<Spanned<String>>,
    pub(super) basic_user: Option<Spanned<String>>,
    pub(super) basic_password_env: Option<Spanned<String>>,
    pub(super) basic_password_file: Option<Spanned<String>>,
    pub(super) headers: Option<std::collections::BTreeMap<String, String>>,
}

/// `[profile.burst]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBurst {
    pub(super) primary: Spanned<OneOrMany>,
    pub(super) overflow: Spanned<OneOrMany>,
    pub(super) warm_at: Spanned<f64>,
    pub(super) burst_at: Spanned<f64>,
    pub(super) release_at: Spanned<f64>,
    pub(super) target: Option<Spanned<f64>>,
    pub(super) sustain: Option<Spanned<String>>,
    pub(super) cooldown: Option<Spanned<String>>,
    pub(super) interval: Option<Spanned<String>>,
    pub(super) max_step: Option<Spanned<f64>>,
    pub(super) max_share: Option<Spanned<f64>>,
    pub(super) warm_lead: Option<Spanned<String>>,
    pub(super) sticky: Option<Spanned<String>>,
    pub(super) transition_ttl: Option<Spanned<i64>>,
    pub(super) on_warm: Option<Spanned<RawHook>>,
    pub(super) on_idle: Option<Spanned<RawHook>>,
    pub(super) fleet: Option<Spanned<RawFleet>>,
}

/// `[profile.burst.fleet]`: decide from the shared Prometheus, as one fleet.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub(super) window: Option<Spanned<String>>,
    pub(super) lag: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pub(super) matchers: Option<Spanned<String>>,
}

/// `on_warm` / `on_idle`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    pub(super) url: Option<Spanned<String>>,
    pub(super) exec: Option<Spanned<Vec<String>>>,
    pub(super) secret: Option<Spanned<String>>,
    pub(super) secret_env: Option<Spanned<String>>,
    pub(super) client: Option<Spanned<RawClient>>,
}

/// An endpoint name or a list of them.
pub(super) struct OneOrMany(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an endpoint name or a list of endpoint names")
            }
            fn visit_str<E>(self, s: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![s.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(OneOrMany(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawView {
    pub(super) name: Spanned<String>,
    pub(super) networks: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) udp_workers: Option<Spanned<i64>>,
    pub(super) udp_payload: Option<Spanned<i64>>,
    pub(super) tcp_max_connections: Option<Spanned<i64>>,
    pub(super) tcp_idle_timeout: Option<Spanned<String>>,
    pub(super) drain: Option<Spanned<String>>,
    pub(super) ecs: Option<bool>,
    pub(super) watch: Option<bool>,
    pub(super) rrl: Option<Spanned<RawRrl>>,
    pub(super) query_log: Option<Spanned<f64>>,
    pub(super) nsid: Option<Spanned<String>>,
    pub(super) identity: Option<Spanned<String>>,
    pub(super) cookies: Option<Spanned<RawCookies>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCookies {
    pub(super) secret: Option<Spanned<String>>,
    pub(super) secret_env: Option<Spanned<String>>,
    pub(super) secret_file: Option<Spanned<String>>,
    pub(super) accept: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRrl {
    pub(super) responses_per_second: Option<Spanned<i64>>,
    pub(super) slip: Option<Spanned<i64>>,
    pub(super) ipv4_prefix: Option<Spanned<i64>>,
    pub(super) ipv6_prefix: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
    pub(super) name: Spanned<String>,
    pub(super) file: Spanned<String>,
    pub(super) allow_transfer: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) transfer_key: Option<Spanned<String>>,
    pub(super) notify: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) primaries: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) primary_key: Option<Spanned<String>>,
}
