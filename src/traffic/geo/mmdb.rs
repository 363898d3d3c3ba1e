//! Writing MaxMind DB files (format 2.0) from a CSV of networks, for private networks, branch
//! offices and tests: `meridian geoip build`.
//!
//! The file is an IPv6 search tree (IPv4 networks live in the `::/96` subtree, as in MaxMind's
//! own databases) followed by the data section and the metadata. Records use MaxMind's City
//! layout (`country.iso_code`, `continent.code`, `subdivisions[0].iso_code`,
//! `location.latitude/longitude`), so any MaxMind reader understands them.

use std::collections::HashMap;
use std::net::IpAddr;

/// One row of the CSV: a network and what to say about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub addr: IpAddr,
    pub prefix: u8,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub subdivision: Option<String>,
    pub location: Option<(f64, f64)>,
}

/// Parses `cidr,country,continent,subdivision,lat,lon` rows. A header line, blank lines and
/// `#` comments are skipped; every field but the network may be empty. Errors are
/// `(line, message)`, all of them.
pub fn parse_csv(text: &str) -> Result<Vec<Row>, Vec<(usize, String)>> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("cidr,") {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 6 {
            errors.push((
                n,
                format!(
                    "expected 6 fields (cidr,country,continent,subdivision,lat,lon), found {}",
                    f.len()
                ),
            ));
            continue;
        }
        let (addr, prefix) = match parse_cidr(f[0]) {
            Ok(c) => c,
            Err(e) => {
                errors.push((n, e));
                continue;
            }
        };
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_ascii_uppercase());
        let country = opt(f[1]);
        if let Some(c) = &country
            && super::country_id(c.as_bytes()).and_then(super::country).is_none()
        {
            errors.push((n, format!("unknown country code {c:?}")));
            continue;
        }
        let continent = opt(f[2]);
        if let Some(c) = &continent
            && !["AF", "AN", "AS", "EU", "NA", "OC", "SA"].contains(&c.as_str())
        {
            errors.push((
                n,
                format!("unknown continent code {c:?}: expected AF, AN, AS, EU, NA, OC or SA"),
            ));
            continue;
        }
        // A subdivision may be written `US-WA` or `WA`; it is stored without the country.
        let subdivision = opt(f[3]).map(|s| match (&country, s.split_once('-')) {
            (Some(c), Some((p, rest))) if p == c => rest.to_string(),
            _ => s,
        });
        if let Some(s) = &subdivision
            && (country.is_none()
                || s.is_empty()
                || s.len() > 3
                || !s.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            errors.push((
                n,
                format!("invalid subdivision {s:?}: 1-3 letters or digits, with a country"),
            ));
            continue;
        }
        let location = match (f[4], f[5]) {
            ("", "") => None,
            (lat, lon) => match (lat.parse::<f64>(), lon.parse::<f64>()) {
                (Ok(lat), Ok(lon))
                    if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
                {
                    Some((lat, lon))
                }
                _ => {
                    errors.push((n, format!("invalid coordinates {lat:?}, {lon:?}")));
                    continue;
                }
            },
        };
        rows.push(Row { addr, prefix, country, continent, subdivision, location });
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

/// Parses `addr/prefix` and insists that no host bits are set.
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (a, p) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not a network: write ADDRESS/PREFIX"))?;
    let addr: IpAddr = a.parse().map_err(|_| format!("invalid address {a:?}"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|&p| p <= max)
        .ok_or_else(|| format!("invalid prefix length {p:?}"))?;
    if bits(addr) & !mask(prefix, max) != 0 {
        return Err(format!("{text} has host bits set"));
    }
    Ok((addr, prefix))
}

/// The address as a 128-bit number, left-aligned in its own width.
fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn mask(prefix: u8, width: u8) -> u128 {
    let all = if width == 128 { u128::MAX } else { (1u128 << width) - 1 };
    if prefix == 0 { 0 } else { all & !((1u128 << (width - prefix)) - 1) }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Child {
    Empty,
    Node(u32),
    Data(u32),
}

/// Builds a database from rows. Later rows override earlier ones where they overlap; more
/// specific networks always win inside less specific ones.
pub fn build(rows: &[Row], database_type: &str, build_epoch: u64) -> Vec<u8> {
    build_with(rows, database_type, build_epoch, record)
}

/// [`build`] with each row's data record encoded by `record` (tests use it to write other
/// vendors' layouts).
fn build_with(
    rows: &[Row],
    database_type: &str,
    build_epoch: u64,
    record: impl Fn(&Row) -> Vec<u8>,
) -> Vec<u8> {
    let mut data = Vec::new();
    let mut offsets: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut nodes: Vec<[Child; 2]> = vec![[Child::Empty; 2]];

    // Less specific networks first, so that more specific ones split them.
    let mut order: Vec<&Row> = rows.iter().collect();
    order.sort_by_key(|r| full_prefix(r));
    for row in order {
        let rec = record(row);
        let off = *offsets.entry(rec.clone()).or_insert_with(|| {
            let o = data.len() as u32;
            data.extend_from_slice(&rec);
            o
        });
        let (value, depth) = (full_bits(row), full_prefix(row));
        insert(&mut nodes, value, depth, off);
    }

    let node_count = nodes.len() as u32;
    let max_value = node_count as u64 + 16 + data.len() as u64;
    let record_size: u16 = if max_value < (1 << 24) { 24 } else { 32 };
    let encode = |c: Child| -> u32 {
        match c {
            Child::Empty => node_count,
            Child::Node(i) => i,
            Child::Data(o) => node_count + 16 + o,
        }
    };
    let mut out = Vec::with_capacity(nodes.len() * 8 + 16 + data.len() + 256);
    for n in &nodes {
        for c in n {
            let v = encode(*c);
            if record_size == 24 {
                out.extend_from_slice(&v.to_be_bytes()[1..]);
            } else {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let mut meta = Enc::default();
    meta.map(9);
    meta.str("binary_format_major_version");
    meta.uint(5, 2);
    meta.str("binary_format_minor_version");
    meta.uint(5, 0);
    meta.str("build_epoch");
    meta.uint(9, build_epoch);
    meta.str("database_type");
    meta.str(database_type);
    meta.str("description");
    meta.map(1);
    meta.str("en");
    meta.str("Built by meridian geoip build");
    meta.str("ip_version");
    meta.uint(5, 6);
    meta.str("languages");
    meta.array(1);
    meta.str("en");
    meta.str("node_count");
    meta.uint(6, node_count as u64);
    meta.str("record_size");
    meta.uint(5, record_size as u64);
    out.extend_from_slice(&meta.0);
    out
}

/// IPv4 networks sit under `::/96`.
fn full_bits(r: &Row) -> u128 {
    bits(r.addr)
}

fn full_prefix(r: &Row) -> u8 {
    if r.addr.is_ipv4() { r.prefix + 96 } else { r.prefix }
}

fn insert(nodes: &mut Vec<[Child; 2]>, value: u128, depth: u8, data: u32) {
    let mut node = 0usize;
    for i in 0..depth {
        let bit = ((value >> (127 - i)) & 1) as usize;
        if i + 1 == depth {
            set_subtree(nodes, node, bit, data);
            return;
        }
        node = match nodes[node][bit] {
            Child::Node(n) => n as usize,
            other => {
                // Going deeper than an existing leaf: the new node inherits the leaf on both
                // sides, so the rest of the less specific network keeps its data.
                nodes.push([other; 2]);
                let n = nodes.len() - 1;
                nodes[node][bit] = Child::Node(n as u32);
                n
            }
        };
    }
    // depth 0 (the whole address space): both sides of the root.
    set_subtree(nodes, 0, 0, data);
    set_subtree(nodes, 0, 1, data);
}

/// Points `nodes[node][bit]` at `data`, also replacing the data of any less specific network
/// inside that subtree (rows are inserted from less to more specific, so anything already
/// below is less specific or an earlier row of the same network).
fn set_subtree(nodes: &mut [[Child; 2]], node: usize, bit: usize, data: u32) {
    match nodes[node][bit] {
        Child::Node(n) => {
            for b in 0..2 {
                set_subtree(nodes, n as usize, b, data);
            }
        }
        _ => nodes[node][bit] = Child::Data(data),
    }
}

/// The data record for a row, in MaxMind's City layout.
fn record(r: &Row) -> Vec<u8> {
    let mut e = Enc::default();
    let fields =
        [r.country.is_some(), r.continent.is_some(), r.subdivision.is_some(), r.location.is_some()];
    e.map(fields.iter().filter(|f| **f).count());
    if let Some(c) = &r.continent {
        e.str("continent");
        e.map(1);
        e.str("code");
        e.str(c);
    }
    if let Some(c) = &r.country {
        e.str("country");
        e.map(1);
        e.str("iso_code");
        e.str(c);
    }
    if let Some((lat, lon)) = r.location {
        e.str("location");
        e.map(2);
        e.str("latitude");
        e.double(lat);
        e.str("longitude");
        e.double(lon);
    }
    if let Some(s) = &r.subdivision {
        e.str("subdivisions");
        e.array(1);
        e.map(1);
        e.str("iso_code");
        e.str(s);
    }
    e.0
}

/// The MaxMind DB data-section encoder (spec §"Data Section"): a control byte with the type in
/// the top 3 bits (0 = extended, type - 7 in the next byte) and the size in the low 5.
#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn control(&mut self, ty: u8, size: usize) {
        let (low, ext): (u8, &[u8]) = match size {
            0..=28 => (size as u8, &[]),
            29..=284 => (29, &[(size - 29) as u8]),
            285..=65_820 => (30, &((size - 285) as u16).to_be_bytes()),
            _ => (31, &((size - 65_821) as u32).to_be_bytes()[1..]),
        };
        let ext = ext.to_vec();
        if ty <= 7 {
            self.0.push((ty << 5) | low);
        } else {
            self.0.push(low);
            self.0.push(ty - 7);
        }
        self.0.extend_from_slice(&ext);
    }

    fn str(&mut self, s: &str) {
        self.control(2, s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn double(&mut self, v: f64) {
        self.control(3, 8);
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    /// Unsigned integers (type 5 uint16, 6 uint32, 9 uint64) in the fewest bytes.
    fn uint(&mut self, ty: u8, v: u64) {
        let bytes = v.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        self.control(ty, 8 - skip);
        self.0.extend_from_slice(&bytes[skip..]);
    }

    fn map(&mut self, pairs: usize) {
        self.control(7, pairs);
    }

    fn array(&mut self, len: usize) {
        self.control(11, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::geo::{GeoDb, Region};

    fn db(csv: &str) -> GeoDb {
        GeoDb::from_bytes(build(&parse_csv(csv).unwrap(), "Test", 1)).unwrap()
    }

    /// ip-location-db's layout: flat records, `country_code` alone (the country files) or with
    /// `state1`, `city`, `latitude`, `longitude`, `timezone` (the city files), no continent.
    #[test]
    fn ip_location_db_layout() {
        let flat = |r: &Row| {
            let mut e = Enc::default();
            match r.location {
                None => {
                    e.map(1);
                    e.str("country_code");
                    e.str(r.country.as_deref().unwrap());
                }
                Some((lat, lon)) => {
                    e.map(6);
                    e.str("country_code");
                    e.str(r.country.as_deref().unwrap());
                    e.str("state1");
                    e.str("Hesse");
                    e.str("city");
                    e.str("Frankfurt am Main");
                    e.str("latitude");
                    e.double(lat);
                    e.str("longitude");
                    e.double(lon);
                    e.str("timezone");
                    e.str("Europe/Berlin");
                }
            }
            e.0
        };
        let rows =
            parse_csv("10.0.0.0/8,DE,,,50.11,8.68\n10.1.0.0/16,JP,,,,\n2001:db8::/32,BR,,,,\n")
                .unwrap();
        let geo = GeoDb::from_bytes(build_with(&rows, "geo-whois-asn-country", 1, flat)).unwrap();
        // City layout: the country, its Traffic Manager group from the country table, and the
        // coordinates given (not the centroid); state1 is a name, not an ISO code: ignored.
        let l = geo.lookup("10.2.3.4".parse().unwrap());
        assert!(l.record.found);
        assert_eq!(Region::Country(l.record.country.unwrap()).to_string(), "DE");
        assert_eq!(crate::traffic::geo::GROUPS[l.record.group.unwrap() as usize], "GEO-EU");
        assert_eq!(l.record.location.map(|x| (x.lat, x.lon)), Some((50.11, 8.68)));
        assert!(!l.record.location_is_centroid);
        assert!(l.record.subdivision.is_none());
        // Country layout: the centroid stands in for a location, for the performance method.
        let l = geo.lookup("10.1.2.3".parse().unwrap());
        assert_eq!(Region::Country(l.record.country.unwrap()).to_string(), "JP");
        assert_eq!(crate::traffic::geo::GROUPS[l.record.group.unwrap() as usize], "GEO-AS");
        assert!(l.record.location_is_centroid && l.record.location.is_some());
        let l = geo.lookup("2001:db8::1".parse().unwrap());
        assert_eq!(Region::Country(l.record.country.unwrap()).to_string(), "BR");
        assert_eq!(crate::traffic::geo::GROUPS[l.record.group.unwrap() as usize], "GEO-SA");
    }

    #[test]
    fn round_trip_through_maxminddb() {
        let geo = db("cidr,country,continent,subdivision,lat,lon\n\
                      10.0.0.0/8,DE,EU,,50.1,8.7\n\
                      10.1.0.0/16,US,NA,US-WA,47.6,-122.3\n\
                      2001:db8::/32,JP,AS,,,\n");
        let l = geo.lookup("10.2.3.4".parse().unwrap());
        assert!(l.record.found);
        assert_eq!(Region::Country(l.record.country.unwrap()).to_string(), "DE");
        // Not /8: 10.1.0.0/16 splits the /8 in the tree, and 10.2.3.4 is found at the node for
        // 10.2.0.0/15, the largest block around it that shares its answer (the right ECS scope).
        assert_eq!(l.prefix, 15);
        assert_eq!(geo.lookup("10.200.0.1".parse().unwrap()).prefix, 9);
        assert_eq!(l.record.location.map(|x| x.lat), Some(50.1));
        let l = geo.lookup("10.1.200.1".parse().unwrap());
        assert_eq!(Region::Subdivision(l.record.subdivision.unwrap()).to_string(), "US-WA");
        assert_eq!(l.prefix, 16);
        let l = geo.lookup("2001:db8::1".parse().unwrap());
        assert_eq!(Region::Country(l.record.country.unwrap()).to_string(), "JP");
        assert!(l.record.location_is_centroid, "no coordinates: the country centroid stands in");
        assert_eq!(l.prefix, 32);
        let l = geo.lookup("192.0.2.1".parse().unwrap());
        assert!(!l.record.found);
    }

    /// The flat tables answer exactly what a walk of the MaxMind tree answers: for every
    /// network's first and last address and its neighbours, and for random addresses, in
    /// this writer's databases and in the shipped demo database.
    #[test]
    fn flat_tables_answer_as_the_tree_does() {
        let csv = "cidr,country,continent,subdivision,lat,lon\n\
                   10.0.0.0/8,DE,EU,,50.1,8.7\n10.1.0.0/16,US,NA,US-WA,47.6,-122.3\n\
                   10.1.2.0/24,US,NA,US-CA,34.0,-118.2\n192.0.2.128/25,FR,EU,,,\n\
                   0.0.0.0/1,BR,SA,,,\n2001:db8::/32,JP,AS,,,\n2001:db8:1::/48,AU,OC,,,\n\
                   2a00::/12,GB,EU,GB-SCT,55.9,-3.2\n";
        let demo = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/geoip/demo.mmdb")).unwrap();
        for (what, bytes) in [("built", build(&parse_csv(csv).unwrap(), "Test", 1)), ("demo", demo)]
        {
            let reader = maxminddb::Reader::from_source(bytes.clone()).unwrap();
            let geo = GeoDb::from_bytes(bytes).unwrap();
            let mut probes: Vec<std::net::IpAddr> = Vec::new();
            let opts = maxminddb::WithinOptions::default().include_networks_without_data();
            for r in reader.networks(opts).unwrap() {
                let net = r.unwrap().network().unwrap();
                match net.network() {
                    std::net::IpAddr::V4(a) => {
                        let (s, p) = (u32::from(a), net.prefix());
                        let last = s | u32::MAX.checked_shr(p as u32).unwrap_or(0);
                        for x in [s, last, s.wrapping_sub(1), last.wrapping_add(1)] {
                            probes.push(std::net::Ipv4Addr::from(x).into());
                            // The same address as IPv6 sees it.
                            probes.push(std::net::Ipv4Addr::from(x).to_ipv6_mapped().into());
                            probes.push(std::net::Ipv6Addr::from(x as u128).into());
                        }
                    }
                    std::net::IpAddr::V6(a) => {
                        let (s, p) = (u128::from(a), net.prefix());
                        let last = s | u128::MAX.checked_shr(p as u32).unwrap_or(0);
                        for x in [s, last, s.wrapping_sub(1), last.wrapping_add(1)] {
                            probes.push(std::net::Ipv6Addr::from(x).into());
                        }
                    }
                }
            }
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            for _ in 0..20_000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                probes.push(std::net::Ipv4Addr::from(seed as u32).into());
                let hi = if seed & 1 == 0 { 0x2001_0db8u128 << 96 } else { 0x2a00u128 << 112 };
                probes.push(std::net::Ipv6Addr::from(hi | (seed as u128) << 40).into());
            }
            for ip in probes {
                let want = crate::traffic::geo::tree_lookup(&reader, ip);
                let got = geo.lookup(ip);
                assert_eq!(got.record.value.is_some(), got.record.found, "{what}: {ip}");
                assert_eq!(
                    (crate::traffic::geo::GeoInfo { value: None, ..*got.record }, got.prefix),
                    want,
                    "{what}: {ip}"
                );
            }
        }
    }

    #[test]
    fn csv_errors_have_line_numbers() {
        let e = parse_csv(
            "10.0.0.1/8,DE,,,,\n10.0.0.0/8,XX,,,,\n10.0.0.0/33,,,,,\n1,2\n10.0.0.0/8,DE,,,91,0\n",
        )
        .unwrap_err();
        let lines: Vec<usize> = e.iter().map(|x| x.0).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5], "{e:?}");
        assert!(e[0].1.contains("host bits"));
    }

    #[test]
    fn large_records_and_sizes() {
        let mut e = Enc::default();
        e.str(&"x".repeat(300));
        assert_eq!(e.0[0], (2 << 5) | 30);
        let mut e = Enc::default();
        e.uint(9, 1);
        assert_eq!(e.0, [1, 2, 1]);
    }
}
