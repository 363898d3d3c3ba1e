//! Where a client is: GeoIP lookups, region codes as small integers, and distances.
//!
//! Region codes are Azure Traffic Manager's (`WORLD`, `GEO-EU`, `DE`, `US-WA`) so profiles port
//! from Azure unchanged. The country → region-group table is data shipped with Meridian
//! (`countries.csv`), not MaxMind's continent field: Traffic Manager's groups differ (the Middle
//! East, Central America and the Caribbean). This module knows nothing about profiles or DNS.

pub mod mmdb;

use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

/// Traffic Manager's region groups, in id order.
pub const GROUPS: [&str; 8] =
    ["GEO-AF", "GEO-AN", "GEO-AP", "GEO-AS", "GEO-EU", "GEO-ME", "GEO-NA", "GEO-SA"];

/// A region a geographic endpoint can be mapped to, from least to most specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Region {
    World,
    Group(u8),
    /// ISO 3166-1 alpha-2, as `(first letter - 'A') * 26 + (second letter - 'A')`.
    Country(u16),
    /// ISO 3166-2: the country in the high bits, the subdivision code (1-3 letters or digits,
    /// base 37) in the low 16.
    Subdivision(u32),
}

/// A country's row in the shipped table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Country {
    pub group: u8,
    pub lat: f64,
    pub lon: f64,
}

/// A latitude/longitude pair in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

/// What Meridian reads of one GeoIP record. The database's distinct records are compiled
/// once; a lookup hands out a reference to one of them (see [`Geo`]), never a copy.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GeoInfo {
    pub country: Option<u16>,
    pub group: Option<u8>,
    pub subdivision: Option<u32>,
    pub location: Option<Location>,
    /// True when `location` is the country's centroid (the database had no coordinates).
    pub location_is_centroid: bool,
    /// False when the database has no record for the address.
    pub found: bool,
    /// Which of the database's distinct records this is (its index + 1), so that what a
    /// profile derives from a record can be computed once per record at snapshot build.
    pub value: Option<std::num::NonZeroU32>,
}

impl GeoInfo {
    /// No record: what an address the database does not cover reads as.
    pub const NONE: GeoInfo = GeoInfo {
        country: None,
        group: None,
        subdivision: None,
        location: None,
        location_is_centroid: false,
        found: false,
        value: None,
    };
}

/// What GeoIP says about one client address: the record of the network it falls in, and that
/// network's prefix length (how far the answer depends on the address: the ECS scope).
/// Two words, passed in registers: a copy of the 56-byte record per query cost geographic
/// answers stalls that instruction counts did not show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geo<'a> {
    pub record: &'a GeoInfo,
    pub prefix: u8,
}

impl Geo<'_> {
    /// No record and no network (no database, or a method that did not need one).
    pub const NONE: Geo<'static> = Geo { record: &GeoInfo::NONE, prefix: 0 };
}

const COUNTRY_CSV: &str = include_str!("countries.csv");

fn countries() -> &'static [Option<Country>; 676] {
    static TABLE: OnceLock<[Option<Country>; 676]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [None; 676];
        for line in COUNTRY_CSV.lines().filter(|l| !l.starts_with('#') && !l.starts_with("code,")) {
            let f: Vec<&str> = line.splitn(5, ',').collect();
            let (Some(id), Some(group), Ok(lat), Ok(lon)) = (
                country_id(f[0].as_bytes()),
                GROUPS.iter().position(|g| *g == f[1]),
                f[2].parse::<f64>(),
                f[3].parse::<f64>(),
            ) else {
                panic!("bad row in the shipped countries.csv: {line}");
            };
            table[id as usize] = Some(Country { group: group as u8, lat, lon });
        }
        table
    })
}

/// The shipped table's row for a country id.
pub fn country(id: u16) -> Option<Country> {
    countries().get(id as usize).copied().flatten()
}

/// Two ASCII letters (either case) → a country id; `None` for anything else. Whether the
/// country exists is [`country`]'s business.
#[inline]
pub fn country_id(code: &[u8]) -> Option<u16> {
    match code {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => Some(
            (a.to_ascii_uppercase() - b'A') as u16 * 26 + (b.to_ascii_uppercase() - b'A') as u16,
        ),
        _ => None,
    }
}

/// A subdivision code without its country prefix (`WA`, `NSW`, `SCT`, `75`) → an id within
/// `country`.
#[inline]
pub fn subdivision_id(country: u16, code: &[u8]) -> Option<u32> {
    if code.is_empty() || code.len() > 3 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in code {
        let d = match c {
            b'0'..=b'9' => c - b'0' + 1,
            b'A'..=b'Z' => c - b'A' + 11,
            b'a'..=b'z' => c - b'a' + 11,
            _ => return None,
        };
        v = v * 37 + d as u32;
    }
    Some(((country as u32) << 16) | v)
}

/// MaxMind continent codes → Traffic Manager groups, for countries missing from the table.
fn continent_group(code: &[u8]) -> Option<u8> {
    let g = match code {
        b"AF" => "GEO-AF",
        b"AN" => "GEO-AN",
        b"AS" => "GEO-AS",
        b"EU" => "GEO-EU",
        b"NA" => "GEO-NA",
        b"OC" => "GEO-AP",
        b"SA" => "GEO-SA",
        _ => return None,
    };
    GROUPS.iter().position(|x| *x == g).map(|i| i as u8)
}

impl Region {
    /// Parses a Traffic Manager region code. Countries must be in the shipped table.
    pub fn parse(text: &str) -> Result<Region, String> {
        let upper = text.trim().to_ascii_uppercase();
        if upper == "WORLD" {
            return Ok(Region::World);
        }
        if let Some(g) = GROUPS.iter().position(|g| *g == upper) {
            return Ok(Region::Group(g as u8));
        }
        let (cc, sub) = match upper.split_once('-') {
            Some((c, s)) => (c, Some(s)),
            None => (upper.as_str(), None),
        };
        let id = country_id(cc.as_bytes())
            .filter(|&id| country(id).is_some())
            .ok_or_else(|| format!("unknown region code {text:?}"))?;
        match sub {
            None => Ok(Region::Country(id)),
            Some(s) => subdivision_id(id, s.as_bytes())
                .map(Region::Subdivision)
                .ok_or_else(|| format!("invalid subdivision code {text:?}: expected e.g. US-WA")),
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cc = |id: u16| {
            let id = id as u32;
            [(b'A' + (id / 26) as u8) as char, (b'A' + (id % 26) as u8) as char]
        };
        match *self {
            Region::World => f.write_str("WORLD"),
            Region::Group(g) => f.write_str(GROUPS[g as usize]),
            Region::Country(c) => write!(f, "{}{}", cc(c)[0], cc(c)[1]),
            Region::Subdivision(s) => {
                let c = cc((s >> 16) as u16);
                let mut v = s & 0xffff;
                let mut code = Vec::new();
                while v > 0 {
                    let d = (v % 37) as u8;
                    code.push(if d <= 10 { b'0' + d - 1 } else { b'A' + d - 11 } as char);
                    v /= 37;
                }
                code.reverse();
                write!(f, "{}{}-{}", c[0], c[1], code.into_iter().collect::<String>())
            }
        }
    }
}

/// Azure region names (as used in a Traffic Manager endpoint's location) → coordinates, so a
/// performance endpoint can say `location = "westeurope"`.
const AZURE_REGIONS: &[(&str, f64, f64)] = &[
    ("australiaeast", -33.86, 151.21),
    ("australiasoutheast", -37.81, 144.96),
    ("brazilsouth", -23.55, -46.63),
    ("canadacentral", 43.65, -79.38),
    ("canadaeast", 46.82, -71.22),
    ("centralindia", 18.58, 73.92),
    ("centralus", 41.59, -93.6),
    ("eastasia", 22.27, 114.19),
    ("eastus", 37.37, -79.82),
    ("eastus2", 36.67, -78.39),
    ("francecentral", 46.3, 2.37),
    ("germanywestcentral", 50.11, 8.68),
    ("japaneast", 35.68, 139.77),
    ("japanwest", 34.69, 135.5),
    ("koreacentral", 37.57, 126.98),
    ("northcentralus", 41.88, -87.63),
    ("northeurope", 53.35, -6.26),
    ("norwayeast", 59.91, 10.75),
    ("southafricanorth", -25.73, 28.22),
    ("southcentralus", 29.42, -98.49),
    ("southeastasia", 1.28, 103.83),
    ("swedencentral", 60.67, 17.14),
    ("switzerlandnorth", 47.45, 8.56),
    ("uaenorth", 25.27, 55.3),
    ("uksouth", 51.51, -0.13),
    ("ukwest", 53.43, -3.08),
    ("westcentralus", 40.89, -110.23),
    ("westeurope", 52.37, 4.9),
    ("westus", 37.78, -122.42),
    ("westus2", 47.23, -119.85),
    ("westus3", 33.45, -112.07),
];

/// A location from a known region name: an Azure region (`westeurope`) or a country code
/// (its centroid).
pub fn known_location(name: &str) -> Option<Location> {
    let lower = name.trim().to_ascii_lowercase().replace([' ', '-'], "");
    if let Some(&(_, lat, lon)) = AZURE_REGIONS.iter().find(|(n, _, _)| *n == lower) {
        return Some(Location { lat, lon });
    }
    let c = country(country_id(name.trim().as_bytes())?)?;
    Some(Location { lat: c.lat, lon: c.lon })
}

/// Great-circle distance in kilometres (haversine).
pub fn distance_km(a: Location, b: Location) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let (dla, dlo) = ((b.lat - a.lat).to_radians(), (b.lon - a.lon).to_radians());
    let h = (dla / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlo / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// A GeoIP database, compiled when it is opened into flat tables: every network of the
/// MaxMind DB as a sorted range start with its prefix length and an index into the few
/// distinct values the database holds (what Meridian reads of a record: country, group,
/// subdivision, location). A lookup is an index read, a binary search among the few networks
/// that share the address's first 16 bits, and one array read, with no tree walk and no
/// decoding, so a geographic answer costs about what a static one does; the database file
/// itself is not kept.
pub struct GeoDb {
    v4: Table<u32>,
    v6: Table<u128>,
    /// The distinct values; index [`NO_DATA`] means the database has no record there.
    values: Box<[GeoInfo]>,
    /// The IPv4 subtree's aliases in an IPv6 database (RFC 6052-era conventions MaxMind's
    /// writer follows): `::ffff:0:0/96`, 6to4 `2002::/16` and Teredo `2001::/32`.
    aliases: Aliases,
    description: String,
}

/// Networks of one family, sorted by their first address: a partition of the part of the
/// address space the database covers (networks without data included, so that the prefix of
/// the network an address falls in is known even when there is no record).
#[derive(Default)]
struct Table<A> {
    starts: Box<[A]>,
    /// `value index << 8 | prefix length`.
    meta: Box<[u32]>,
    /// For each value `t` of an address's first 16 bits, how many networks start before
    /// `t << (bits − 16)` (65 537 entries, 256 KiB; empty for an empty table). The search for
    /// an address then runs only over the networks starting in its own 16-bit block: a few
    /// steps of dependent loads instead of one per halving of the whole table, which for a
    /// full database is the difference between ~19 and ~3.
    index: Box<[u32]>,
}

/// An address family's first 16 bits, for [`Table::index`].
trait Top16: Copy + Ord {
    fn top16(self) -> usize;
}

impl Top16 for u32 {
    #[inline]
    fn top16(self) -> usize {
        (self >> 16) as usize
    }
}

impl Top16 for u128 {
    #[inline]
    fn top16(self) -> usize {
        (self >> 112) as usize
    }
}

impl<A: Top16> Table<A> {
    /// The network containing `a`: its value index and prefix length. `last(start, prefix)`
    /// is the network's last address.
    #[inline]
    fn find(&self, a: A, last: impl Fn(A, u8) -> A) -> Option<(u32, u8)> {
        // Every network starting in an earlier block starts at or before `a`, every one in a
        // later block after it: the count at or before `a` is the block's offset plus the
        // count within the block.
        let t = a.top16();
        let (lo, hi) = match self.index.get(t..t + 2) {
            Some(&[lo, hi]) => (lo as usize, hi as usize),
            _ => return None,
        };
        let i = (lo + self.starts[lo..hi].partition_point(|&s| s <= a)).checked_sub(1)?;
        let m = self.meta[i];
        let prefix = (m & 0xff) as u8;
        (a <= last(self.starts[i], prefix)).then_some((m >> 8, prefix))
    }

    fn len(&self) -> usize {
        self.starts.len()
    }
}

/// A table being filled in address order.
struct Building<A> {
    starts: Vec<A>,
    meta: Vec<u32>,
}

impl<A: Copy + Ord> Table<A> {
    fn building() -> Building<A> {
        Building { starts: Vec::new(), meta: Vec::new() }
    }
}

impl<A: Copy + Ord> Building<A> {
    /// Adds the next network; false when it is not after the one before.
    fn push(&mut self, start: A, meta: u32) -> bool {
        let ordered = self.starts.last().is_none_or(|&last| last < start);
        self.starts.push(start);
        self.meta.push(meta);
        ordered
    }

    fn first_with_data(&self) -> Option<A> {
        self.meta.iter().position(|m| m >> 8 != NO_DATA).map(|i| self.starts[i])
    }

    fn done(self) -> Table<A>
    where
        A: Top16,
    {
        let index = if self.starts.is_empty() {
            Box::default()
        } else {
            (0..=1usize << 16)
                .scan(0usize, |i, t| {
                    while *i < self.starts.len() && self.starts[*i].top16() < t {
                        *i += 1;
                    }
                    Some(*i as u32)
                })
                .collect()
        };
        Table { starts: self.starts.into(), meta: self.meta.into(), index }
    }
}

const NO_DATA: u32 = (1 << 24) - 1;

#[derive(Debug, Default, Clone, Copy)]
struct Aliases {
    /// An IPv6 database: `::a.b.c.d` is in its IPv4 subtree.
    subtree: bool,
    mapped: bool,
    six_to_four: bool,
    teredo: bool,
}

fn last4(start: u32, prefix: u8) -> u32 {
    start | u32::MAX.checked_shr(prefix as u32).unwrap_or(0)
}

fn last6(start: u128, prefix: u8) -> u128 {
    start | u128::MAX.checked_shr(prefix as u32).unwrap_or(0)
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("description", &self.description)
            .field("networks", &(self.v4.len() + self.v6.len()))
            .field("values", &self.values.len())
            .finish()
    }
}

/// The fields Meridian reads, covering the layouts people use: MaxMind GeoIP2/GeoLite2
/// Country and City (and DB-IP's MaxMind-compatible files), and ip-location-db's flat
/// `country_code`/`latitude`/`longitude` files. Strings borrow from the database, so a lookup
/// allocates nothing.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    registered_country: Option<IsoCode<'a>>,
    #[serde(borrow)]
    continent: Option<ContinentCode<'a>>,
    #[serde(borrow, default, deserialize_with = "first_subdivision")]
    subdivisions: Option<IsoCode<'a>>,
    location: Option<Coordinates>,
    #[serde(borrow)]
    country_code: Option<&'a str>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct ContinentCode<'a> {
    #[serde(borrow)]
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Coordinates {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// Takes the first (most specific) subdivision and skips the rest, without collecting the
/// array into a `Vec`.
fn first_subdivision<'de, D>(d: D) -> Result<Option<IsoCode<'de>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct First;
    impl<'de> serde::de::Visitor<'de> for First {
        type Value = Option<IsoCode<'de>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of subdivisions")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<IsoCode<'de>>()?;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }
    d.deserialize_seq(First)
}

impl GeoDb {
    /// Opens a MaxMind DB file and compiles it.
    pub fn open(path: &Path) -> Result<GeoDb, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read GeoIP database: {e}"))?;
        GeoDb::from_bytes(bytes)
    }

    /// Compiles a MaxMind DB held in `bytes`: every network walked once, every distinct
    /// record decoded once.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoDb, String> {
        let reader = maxminddb::Reader::from_source(bytes)
            .map_err(|e| format!("not a MaxMind DB file: {e}"))?;
        let m = reader.metadata();
        let mut description =
            format!("{} (IPv{}, {} nodes", m.database_type, m.ip_version, m.node_count);
        let bad = |e: maxminddb::MaxMindDbError| format!("a damaged MaxMind DB: {e}");
        let opts = maxminddb::WithinOptions::default().include_networks_without_data();
        let mut values: Vec<GeoInfo> = Vec::new();
        let mut by_offset: std::collections::HashMap<usize, u32> = Default::default();
        // The walk is depth first, zero branch first: each family comes out in address order,
        // so the tables are filled as they are read, with no sort and no second copy.
        let (mut v4, mut v6) = (Table::<u32>::building(), Table::<u128>::building());
        for item in reader.networks(opts).map_err(bad)? {
            let r = item.map_err(bad)?;
            let net = r.network().map_err(bad)?;
            let value = match r.offset() {
                None => NO_DATA,
                Some(off) => match by_offset.get(&off) {
                    Some(&v) => v,
                    None => {
                        // A record that does not decode reads as no record, as a lookup of
                        // it always did.
                        let v = match r.decode::<Record<'_>>() {
                            Ok(Some(rec)) => {
                                let mut info = info_from(rec);
                                info.value = std::num::NonZeroU32::new(values.len() as u32 + 1);
                                values.push(info);
                                (values.len() - 1) as u32
                            }
                            _ => NO_DATA,
                        };
                        if values.len() >= NO_DATA as usize {
                            return Err(
                                "more distinct records than Meridian can hold (16 million)".into(),
                            );
                        }
                        by_offset.insert(off, v);
                        v
                    }
                },
            };
            let meta = value << 8 | net.prefix() as u32;
            let in_order = match net.network() {
                IpAddr::V4(a) => v4.push(u32::from(a), meta),
                IpAddr::V6(a) => v6.push(u128::from(a), meta),
            };
            if !in_order {
                return Err("the database's networks are not in address order".into());
            }
        }
        // The IPv4 aliases an IPv6 database carries (the walk skips them): one looked-up
        // address per alias tells.
        let mut aliases = Aliases::default();
        if m.ip_version == 6
            && let Some(start) = v4.first_with_data()
        {
            let v4 = std::net::Ipv4Addr::from(start);
            let same = |alias: std::net::Ipv6Addr| {
                let (a, b) = (reader.lookup(IpAddr::V4(v4)), reader.lookup(IpAddr::V6(alias)));
                matches!((a, b), (Ok(a), Ok(b)) if a.offset().is_some() && a.offset() == b.offset())
            };
            let embed = |base: u128, shift: u32| (base | (u128::from(start) << shift)).into();
            aliases.mapped = same(v4.to_ipv6_mapped());
            aliases.six_to_four = same(embed(0x2002u128 << 112, 80));
            aliases.teredo = same(embed(0x2001_0000u128 << 96, 64));
        }
        aliases.subtree = m.ip_version == 6;
        let (v4, v6) = (v4.done(), v6.done());
        description.push_str(&format!(
            "; {} networks, {} distinct records)",
            v4.len() + v6.len(),
            values.len()
        ));
        Ok(GeoDb { v4, v6, values: values.into(), aliases, description })
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// The database's distinct records, in the order `GeoInfo::value` counts them.
    pub fn values(&self) -> &[GeoInfo] {
        &self.values
    }

    /// Bytes held by the compiled tables.
    pub fn memory(&self) -> usize {
        self.v4.len() * 8
            + self.v6.len() * 20
            + (self.v4.index.len() + self.v6.index.len()) * 4
            + self.values.len() * std::mem::size_of::<GeoInfo>()
    }

    /// Looks up one address. Never fails: an address the database does not know gives a
    /// The record of the network `ip` falls in and that network's prefix; a record with
    /// `found = false` (and the prefix of the network it falls in, when the database covers
    /// it) when there is none.
    // Kept out of line: inlined into `resolve` it cost every static answer ~70 instructions
    // (register pressure in the common path), measured with callgrind.
    #[inline(never)]
    pub fn lookup(&self, ip: IpAddr) -> Geo<'_> {
        let found = match ip {
            IpAddr::V4(a) => self.v4.find(u32::from(a), last4),
            IpAddr::V6(a) => {
                let x = u128::from(a);
                // Addresses that lead into the IPv4 subtree: `::a.b.c.d` always (where the
                // subtree is), the aliases when the database has them; the prefix is then
                // counted in IPv6 bits, as the tree walk counted it.
                let al = self.aliases;
                let into4 = if (x >> 32 == 0 && al.subtree) || (x >> 32 == 0xffff && al.mapped) {
                    Some((x as u32, 96))
                } else if x >> 112 == 0x2002 && al.six_to_four {
                    Some(((x >> 80) as u32, 16))
                } else if x >> 96 == 0x2001_0000 && al.teredo {
                    Some(((x >> 64) as u32, 32))
                } else {
                    None
                };
                match into4 {
                    Some((v4, bits)) => self.v4.find(v4, last4).map(|(v, p)| (v, p + bits)),
                    None => self.v6.find(x, last6),
                }
            }
        };
        let Some((value, prefix)) = found else { return Geo::NONE };
        Geo { record: self.values.get(value as usize).unwrap_or(&GeoInfo::NONE), prefix }
    }
}

/// What Meridian reads of one record.
fn info_from(rec: Record<'_>) -> GeoInfo {
    let mut info = GeoInfo { found: true, ..GeoInfo::default() };
    let cc = rec
        .country
        .and_then(|c| c.iso_code)
        .or(rec.country_code)
        .or(rec.registered_country.and_then(|c| c.iso_code));
    info.country = cc.and_then(|c| country_id(c.as_bytes()));
    let known = info.country.and_then(country);
    info.group = known
        .map(|c| c.group)
        .or_else(|| rec.continent.and_then(|c| c.code).and_then(|c| continent_group(c.as_bytes())));
    if let (Some(c), Some(sub)) = (info.country, rec.subdivisions.and_then(|s| s.iso_code)) {
        info.subdivision = subdivision_id(c, sub.as_bytes());
    }
    let (lat, lon) = match rec.location {
        Some(l) => (l.latitude, l.longitude),
        None => (rec.latitude, rec.longitude),
    };
    if let (Some(lat), Some(lon)) = (lat, lon) {
        info.location = Some(Location { lat, lon });
    } else if let Some(c) = known {
        info.location = Some(Location { lat: c.lat, lon: c.lon });
        info.location_is_centroid = true;
    }
    info
}

/// The tree walk the tables replace, for tests to hold them to it.
#[cfg(test)]
pub(crate) fn tree_lookup(reader: &maxminddb::Reader<Vec<u8>>, ip: IpAddr) -> (GeoInfo, u8) {
    let Ok(result) = reader.lookup(ip) else { return (GeoInfo::NONE, 0) };
    let prefix = result.network().map_or(0, |net| net.prefix());
    let Ok(Some(rec)) = result.decode::<Record<'_>>() else { return (GeoInfo::NONE, prefix) };
    (info_from(rec), prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_codes_round_trip() {
        for code in ["WORLD", "GEO-EU", "GEO-ME", "DE", "US", "US-WA", "AU-NSW", "GB-SCT", "FR-75"]
        {
            assert_eq!(Region::parse(code).unwrap().to_string(), code);
        }
        assert_eq!(Region::parse("us-wa").unwrap().to_string(), "US-WA");
        assert!(Region::parse("XX").unwrap_err().contains("unknown region code"));
        assert!(Region::parse("GEO-XX").is_err());
        assert!(Region::parse("US-ABCD").is_err());
    }

    #[test]
    fn table_is_traffic_managers_grouping() {
        let group =
            |c: &str| GROUPS[country(country_id(c.as_bytes()).unwrap()).unwrap().group as usize];
        assert_eq!(group("SA"), "GEO-ME"); // Saudi Arabia: Middle East, not Asia
        assert_eq!(group("AE"), "GEO-ME");
        assert_eq!(group("PA"), "GEO-NA"); // Panama: North/Central America
        assert_eq!(group("JM"), "GEO-NA"); // the Caribbean
        assert_eq!(group("AU"), "GEO-AP");
        assert_eq!(group("BR"), "GEO-SA");
        assert_eq!(group("AQ"), "GEO-AN");
        let rows = COUNTRY_CSV.lines().filter(|l| !l.starts_with('#') && !l.starts_with("code,"));
        let mut seen = std::collections::HashSet::new();
        for row in rows {
            let code = &row[..2];
            assert!(seen.insert(code), "{code} twice");
            let c = country(country_id(code.as_bytes()).unwrap()).unwrap();
            assert!((-90.0..=90.0).contains(&c.lat) && (-180.0..=180.0).contains(&c.lon), "{row}");
        }
        assert!(seen.len() > 240);
    }

    #[test]
    fn distances() {
        let ams = known_location("westeurope").unwrap();
        let dub = known_location("northeurope").unwrap();
        let sea = Location { lat: 47.61, lon: -122.33 };
        let d = distance_km(ams, dub);
        assert!((700.0..800.0).contains(&d), "{d}");
        assert!((7700.0..7900.0).contains(&distance_km(ams, sea)));
        assert!(known_location("DE").is_some() && known_location("nowhere").is_none());
    }
}

/// A network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        common_prefix(self.addr, ip).is_some_and(|c| c >= self.prefix)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The number of leading bits two addresses of the same family share.
#[inline]
pub fn common_prefix(a: IpAddr, b: IpAddr) -> Option<u8> {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Some((u32::from(a) ^ u32::from(b)).leading_zeros() as u8),
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            Some((u128::from(a) ^ u128::from(b)).leading_zeros() as u8)
        }
        _ => None,
    }
}
