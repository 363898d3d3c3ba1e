//! Zones: parsing RFC 1035 master files, validating them, and the immutable, pre-encoded form
//! the hot path reads.
//!
//! A [`Zone`] is a flat table of nodes keyed by lowercased wire-form owner name. Every ancestor
//! of every owner down to the apex is a node too (empty non-terminals), so "does this name
//! exist" is one hash lookup, and so is "is there a wildcard here" (each node links to its `*`
//! child). RRsets are stored pre-encoded as record *tails* (type, class, TTL, rdata length,
//! rdata): an answer is the owner name (a compression pointer into the question) followed by a
//! copied tail.
//!
//! Names inside RDATA are compressed too, still by copying: wherever a name in the RDATA of a
//! type RFC 3597 §4 lets us compress (NS, CNAME, SOA, MX, PTR) ends in the zone's apex, the
//! tail holds the labels before it and a two-byte pointer whose target is left blank; the
//! RRset lists those offsets (`relocs`), and the writer fills in where the apex sits in this
//! query's question. Glue and other additional records point their owner names at the name
//! in the RDATA they belong to (`extra_relocs`), with an uncompressed copy kept for the rare
//! message where that name lies past a pointer's 14-bit reach.
//!
//! This module knows nothing about clients, health or load.

mod lex;
pub mod rdata;

use crate::diag::{Diagnostic, Diagnostics, Loc};
use crate::dns::name::Name;
use rdata::{T_A, T_AAAA, T_CNAME, T_DNAME, T_DS, T_MX, T_NS, T_PTR, T_SOA, T_SRV};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub use rdata::type_name;

/// Index of a node inside its zone.
type NodeId = u32;

/// The maps the hot path reads. foldhash rather than std's SipHash: the keys are zone data
/// (trusted, fixed at build time) and queries only look up, so there is nothing for a
/// hash-flooding attacker to grow, and a lookup costs a fraction of SipHash's.
type NameMap<V> = HashMap<Box<[u8]>, V, foldhash::fast::RandomState>;

impl RRset {
    /// Each record's tail (type, class, TTL, rdata length, rdata) with the offsets in it of
    /// the pointers to the apex to fill in.
    pub fn records(&self) -> impl Iterator<Item = (&[u8], impl Iterator<Item = usize> + '_)> {
        let mut rest = &self.tails[..];
        let mut off = 0;
        (0..self.count).map(move |_| {
            let len = 10 + u16::from_be_bytes([rest[8], rest[9]]) as usize;
            let (tail, r) = rest.split_at(len);
            rest = r;
            let start = off;
            off += len;
            let relocs = self
                .relocs
                .iter()
                .filter(move |x| (start..start + len).contains(&(x.at as usize)))
                .map(move |x| x.at as usize - start);
            (tail, relocs)
        })
    }
}

/// One RRset, pre-encoded.
#[derive(Debug, Clone)]
pub struct RRset {
    pub rtype: u16,
    pub ttl: u32,
    /// Number of records in `tails`.
    pub(crate) count: u16,
    /// Concatenated record tails: TYPE, CLASS, TTL, RDLENGTH, RDATA for each record.
    pub(crate) tails: Box<[u8]>,
    /// The two-byte pointers to the zone's apex in `tails`, target left blank.
    pub(crate) relocs: Box<[Reloc]>,
    /// In-zone address records for the names this RRset points at (glue for NS, additional
    /// data for MX and SRV), as whole records whose owners are two-byte pointers, target left
    /// blank: see `extra_relocs`.
    pub(crate) extra: Box<[u8]>,
    pub(crate) extra_count: u16,
    /// For each pointer in `extra`: its offset there, and the record of `tails` (index, and
    /// the offset in `tails` of the name) it points at.
    pub(crate) extra_relocs: Box<[ExtraReloc]>,
    /// `extra` with its owners written out, for a message where the pointers cannot reach.
    pub(crate) extra_plain: Box<[u8]>,
    /// For CNAME: the lowercased target, to follow the chain inside the zone.
    pub(crate) target: Option<Name>,
}

/// A pointer to the apex in an RRset's tails: at offset `at` of `tails`, in its record number
/// `record` (which places it in the message: each record is preceded by an owner name).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reloc {
    pub record: u16,
    pub at: u16,
}

/// Where an additional record's owner points: the name at `tail_at` in the RRset's tails,
/// which is in its record number `record`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExtraReloc {
    pub at: u16,
    pub record: u16,
    pub tail_at: u16,
}

/// One owner name of a zone.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// Sorted by type.
    pub(crate) rrsets: Box<[RRset]>,
    /// A delegation point: NS records at a name other than the apex.
    pub(crate) cut: bool,
    /// The `*` child of this node, when there is one (RFC 4592 source of synthesis).
    wildcard: Option<NodeId>,
    /// A traffic-managed name: the profile that answers for it.
    pub(crate) profile: Option<u32>,
}

impl Node {
    /// Its RRsets, by type.
    pub fn rrsets(&self) -> &[RRset] {
        &self.rrsets
    }

    pub fn rrset(&self, rtype: u16) -> Option<&RRset> {
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }

    pub fn is_empty(&self) -> bool {
        self.rrsets.is_empty()
    }

    /// The profile answering for this name, if it is traffic-managed.
    pub fn profile(&self) -> Option<u32> {
        self.profile
    }
}

/// An immutable, validated zone.
#[derive(Debug)]
pub struct Zone {
    origin: Name,
    nodes: NameMap<NodeId>,
    data: Vec<Node>,
    /// The SOA as a record tail whose TTL is the negative-caching TTL (RFC 2308 §5: the minimum
    /// of the SOA's own TTL and its MINIMUM field).
    pub(crate) soa_negative: Box<[u8]>,
    /// Offsets in `soa_negative` of pointers to the apex (as `RRset::relocs`).
    pub(crate) soa_negative_relocs: Box<[u16]>,
    record_count: usize,
    /// The zone file and every file it includes, for watching.
    files: Box<[PathBuf]>,
    /// Who may transfer it out, and whom to NOTIFY.
    pub transfer: crate::config::Transfer,
    /// The differences between the versions before this one, oldest first, each leading to
    /// the next (the last to this zone's serial), for IXFR. Shared by the snapshots that
    /// carry them on.
    pub history: std::sync::Arc<[Diff]>,
}

/// How one version of a zone became the next (RFC 1995): records as owner (wire form) and
/// tail, names written out; SOA records are not among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    pub from: u32,
    pub to: u32,
    pub deleted: Vec<Box<[u8]>>,
    pub added: Vec<Box<[u8]>>,
}

/// The most versions IXFR can start from.
pub const HISTORY: usize = 16;

/// What a name is inside a zone.
#[derive(Debug, Clone, Copy)]
pub enum Found<'z> {
    /// The name exists (possibly as an empty non-terminal), or a wildcard covers it.
    Node { node: &'z Node, wildcard: bool },
    /// The name is at or below a delegation point. `label` is the index of the label of the
    /// query name at which the delegation point's name starts.
    Referral { node: &'z Node, label: usize },
    /// The name does not exist and no wildcard covers it.
    NxDomain,
}

/// The label structure of a wire name: where each label starts. Built once per query on the
/// stack; label `i`'s suffix is the name with its first `i` labels removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels {
    offsets: [u8; 128],
    count: u8,
}

impl Default for Labels {
    fn default() -> Labels {
        Labels { offsets: [0; 128], count: 0 }
    }
}

impl Labels {
    /// For a caller that walks a name's labels anyway (the query decoder): label `i` starts
    /// at byte `offset`. The count is set once at the end, with [`Labels::set_count`], so
    /// that the walk keeps it in a register rather than updating it in memory per label.
    /// An index past the table is ignored: a name of at most 255 bytes has at most 127
    /// labels, and a longer one is rejected by the caller.
    #[inline]
    pub fn set(&mut self, i: usize, offset: u8) {
        if let Some(slot) = self.offsets.get_mut(i) {
            *slot = offset;
        }
    }

    /// The walk found `count` labels, each given to [`Labels::set`].
    #[inline]
    pub fn set_count(&mut self, count: usize) {
        self.count = count.min(127) as u8;
    }

    /// Indexes a validated, uncompressed wire name.
    pub fn new(wire: &[u8]) -> Labels {
        let mut l = Labels { offsets: [0; 128], count: 0 };
        let mut pos = 0usize;
        while pos < wire.len() && wire[pos] != 0 && (l.count as usize) < 127 {
            l.offsets[l.count as usize] = pos as u8;
            l.count += 1;
            pos += wire[pos] as usize + 1;
        }
        l
    }

    /// Number of labels, root excluded.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// Byte offset at which the suffix after `i` labels starts (`count()` = the root label).
    pub fn offset(&self, wire: &[u8], i: usize) -> usize {
        if i < self.count as usize { self.offsets[i] as usize } else { wire.len() - 1 }
    }
}

impl Zone {
    /// The zone's apex name (lowercased).
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// How many records the zone file held (after removing duplicates).
    /// Every record but the SOA, each as its owner's wire form and its tail with every name
    /// written out, sorted: the form versions are compared in.
    pub fn canonical(&self) -> Vec<Box<[u8]>> {
        let apex = self.origin.wire();
        let mut out = Vec::with_capacity(self.record_count);
        for (owner, node) in self.nodes() {
            for rr in node.rrsets().iter().filter(|r| !(r.rtype == T_SOA && owner == apex)) {
                for (tail, relocs) in rr.records() {
                    out.push(written_out(owner, tail, relocs, apex));
                }
            }
        }
        out.sort();
        out
    }

    /// Carries `prev`'s history on to this version, adding how `prev` became this one, when
    /// this one's serial is later; a zone whose records changed without a later serial, or
    /// whose history would outgrow the zone itself, starts afresh (IXFR then sends it whole).
    pub fn follow(&mut self, prev: &Zone) {
        let (old, new) = (prev.serial(), self.serial());
        let later = old != new && new.wrapping_sub(old) < 0x8000_0000;
        if !later {
            if old == new && prev.canonical() == self.canonical() {
                self.history = prev.history.clone();
            }
            return;
        }
        let (a, b) = (prev.canonical(), self.canonical());
        let (mut deleted, mut added) = (Vec::new(), Vec::new());
        // Both are sorted: one merge walk.
        let (mut i, mut j) = (0, 0);
        loop {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x == y => {
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x < y => {
                    deleted.push(x.clone());
                    i += 1;
                }
                (Some(x), None) => {
                    deleted.push(x.clone());
                    i += 1;
                }
                (_, Some(y)) => {
                    added.push(y.clone());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        let mut history: Vec<Diff> = prev.history.to_vec();
        history.push(Diff { from: old, to: new, deleted, added });
        // Oldest first out: at most HISTORY versions, and never more records than the zone.
        let size = |h: &[Diff]| h.iter().map(|d| d.deleted.len() + d.added.len()).sum::<usize>();
        while history.len() > HISTORY
            || (!history.is_empty() && size(&history) > self.record_count + 1)
        {
            history.remove(0);
        }
        self.history = history.into();
    }

    /// The apex SOA as one record, names written out, with `serial` in place of its own.
    pub fn soa_with(&self, serial: u32) -> Box<[u8]> {
        let soa = self.apex().rrset(T_SOA).expect("a zone has an SOA");
        let (tail, relocs) = soa.records().next().expect("one SOA record");
        let mut rec = written_out(self.origin.wire(), tail, relocs, self.origin.wire());
        let n = rec.len();
        rec[n - 20..n - 16].copy_from_slice(&serial.to_be_bytes());
        rec
    }

    /// The SOA serial.
    pub fn serial(&self) -> u32 {
        // SERIAL is the first of the five numbers that end the SOA's RDATA.
        let t = &self.soa_negative[self.soa_negative.len() - 20..];
        u32::from_be_bytes([t[0], t[1], t[2], t[3]])
    }

    /// Every node with its owner name (lowercased wire form), the apex first.
    pub fn nodes(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        let mut all: Vec<(&[u8], NodeId)> = self.nodes.iter().map(|(k, &v)| (&k[..], v)).collect();
        all.sort_by_key(|&(_, id)| id);
        all.into_iter().map(|(k, id)| (k, &self.data[id as usize]))
    }

    /// The zone file and every file it `$INCLUDE`s.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    pub fn record_count(&self) -> usize {
        self.record_count
    }

    pub fn apex(&self) -> &Node {
        &self.data[0]
    }

    /// Makes `name` a traffic-managed name answered by profile `id`. The name must be below
    /// the apex, hold no records of its own, and not be a wildcard or at or below a delegation
    /// point. It is created (with any missing ancestors, as empty non-terminals) if the zone
    /// file does not mention it.
    pub fn attach_profile(&mut self, name: &Name, id: u32) -> Result<(), String> {
        let name = name.to_lowercase();
        if !name.is_within(&self.origin) || name == self.origin {
            return Err(format!("{name} must be a name below the zone apex {}", self.origin));
        }
        if name.is_wildcard() {
            return Err(format!("{name} is a wildcard; a profile needs an ordinary name"));
        }
        let mut up = Some(name.clone());
        while let Some(n) = up.filter(|n| *n != self.origin) {
            if self.node(n.wire()).is_some_and(|node| node.cut) {
                return Err(format!("{name} is at or below the delegation point {n}"));
            }
            up = n.parent();
        }
        if let Some(node) = self.nodes.get(name.wire()).map(|&id| &mut self.data[id as usize]) {
            if !node.rrsets.is_empty() {
                let types: Vec<String> = node.rrsets.iter().map(|r| type_name(r.rtype)).collect();
                return Err(format!(
                    "{name} is a profile but also has records in the zone file ({})",
                    types.join(", ")
                ));
            }
            node.profile = Some(id);
            return Ok(());
        }
        // New node, plus empty non-terminals up to the first ancestor that exists.
        let mut n = name.clone();
        let mut profile = Some(id);
        while !self.nodes.contains_key(n.wire()) {
            self.data.push(Node { profile: profile.take(), ..Node::default() });
            self.nodes.insert(n.wire().into(), (self.data.len() - 1) as NodeId);
            n = n.parent().expect("the apex exists, so the walk stops there");
        }
        Ok(())
    }

    /// The node for an exact (lowercased wire) name.
    pub fn node(&self, wire: &[u8]) -> Option<&Node> {
        self.nodes.get(wire).map(|&id| &self.data[id as usize])
    }

    /// Finds `qname` (lowercased) in the zone, `apex_label` being the label index where the
    /// zone's origin starts in it. Walks down from the apex so that the highest delegation
    /// point wins and the closest encloser is known for wildcard synthesis. `ds` makes the
    /// delegation point itself answer from this side (DS records live in the parent).
    pub fn lookup(&self, qname: &[u8], labels: &Labels, apex_label: usize, ds: bool) -> Found<'_> {
        let mut encloser = &self.data[0];
        for i in (0..apex_label).rev() {
            match self.nodes.get(&qname[labels.offset(qname, i)..]) {
                Some(&id) => {
                    let node = &self.data[id as usize];
                    if node.cut && !(i == 0 && ds) {
                        return Found::Referral { node, label: i };
                    }
                    encloser = node;
                }
                None => {
                    return match encloser.wildcard {
                        Some(w) => Found::Node { node: &self.data[w as usize], wildcard: true },
                        None => Found::NxDomain,
                    };
                }
            }
        }
        Found::Node { node: encloser, wildcard: false }
    }
}

/// Every zone served, found by longest suffix, and the zones that are ours but have no data
/// to serve (a secondary zone not yet transferred, or past its SOA expire): those answer
/// SERVFAIL rather than falling through to a parent zone or to REFUSED.
#[derive(Debug, Default)]
pub struct ZoneSet {
    zones: Vec<Zone>,
    /// Index into `zones`, or [`UNAVAILABLE`].
    by_origin: NameMap<usize>,
    unavailable: Vec<Name>,
}

const UNAVAILABLE: usize = usize::MAX;

/// The zone a name falls in.
#[derive(Debug, Clone, Copy)]
pub enum Authority<'z> {
    /// Served: the zone, and the label index where its origin starts in the name.
    Zone(&'z Zone, usize),
    /// Ours, but without data to serve: SERVFAIL.
    Unavailable,
}

impl ZoneSet {
    pub fn new(zones: Vec<Zone>, unavailable: Vec<Name>) -> ZoneSet {
        let mut by_origin: NameMap<usize> =
            zones.iter().enumerate().map(|(i, z)| (z.origin.wire().into(), i)).collect();
        for n in &unavailable {
            by_origin.insert(n.wire().into(), UNAVAILABLE);
        }
        ZoneSet { zones, by_origin, unavailable }
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The zones that answer SERVFAIL.
    pub fn unavailable(&self) -> &[Name] {
        &self.unavailable
    }

    /// The zone with the longest origin that contains `qname`, unavailable ones included.
    #[inline]
    pub fn find(&self, qname: &[u8], labels: &Labels) -> Option<Authority<'_>> {
        // Without unavailable zones, the plain lookup: its result is two words in registers,
        // where `Option<Authority>` is three in memory (30 instructions a query, measured).
        if self.unavailable.is_empty() {
            return self.find_served(qname, labels).map(|(z, i)| Authority::Zone(z, i));
        }
        (0..=labels.count()).find_map(|i| {
            let idx = *self.by_origin.get(&qname[labels.offset(qname, i)..])?;
            Some(match self.zones.get(idx) {
                Some(z) => Authority::Zone(z, i),
                None => Authority::Unavailable,
            })
        })
    }

    /// The served zone with the longest origin that contains `qname`, and the label index
    /// where that origin starts in `qname`, when no zone is unavailable.
    #[inline]
    fn find_served(&self, qname: &[u8], labels: &Labels) -> Option<(&Zone, usize)> {
        (0..=labels.count()).find_map(|i| {
            let idx = *self.by_origin.get(&qname[labels.offset(qname, i)..])?;
            Some((&self.zones[idx], i))
        })
    }
}

/// One record as read from the file.
#[derive(Debug)]
struct Record {
    owner: Name,
    rtype: u16,
    ttl: u32,
    rdata: rdata::Rdata,
    /// Index of the file the record is in (the zone file, or one it includes).
    file: u16,
    line: u32,
    col: u32,
}

/// How deep `$INCLUDE`s may nest. Loops are found by path; this also stops one the paths hide
/// (a symbolic link back to an including file).
const MAX_INCLUDE_DEPTH: usize = 16;

/// The most records one `$GENERATE` may make, so that a mistyped range is an error rather than
/// a server that runs out of memory loading it.
const MAX_GENERATE: u64 = 1 << 20;

/// Parses and validates the zone `origin` from `text` (the contents of `file`, which names it
/// in messages and is what `$INCLUDE`d paths are relative to; included files are read from
/// disk). Reports every problem found, not just the first.
pub fn parse(origin: &Name, file: &Path, text: &str) -> Result<Zone, Diagnostics> {
    parse_with(origin, file, text, &|p| std::fs::read_to_string(p))
}

/// [`parse`], reading included files with `read`.
pub fn parse_with(
    origin: &Name,
    file: &Path,
    text: &str,
    read: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<Zone, Diagnostics> {
    let origin = origin.to_lowercase();
    let mut p = Parser {
        read,
        files: vec![file.to_path_buf()],
        diags: Diagnostics::default(),
        records: Vec::new(),
        default_ttl: None,
        last_ttl: None,
    };
    let mut ctx = Ctx { file: 0, origin: origin.clone(), last_owner: None };
    p.file(&mut ctx, text, &mut vec![normalize(file)]);
    let Parser { files, mut diags, records, .. } = p;
    let mut zone = build(origin, records, &files, &mut diags);
    zone.files = files.into();
    diags.into_result(zone)
}

/// The state of reading a zone that spans its files: what has been read, and the TTL rules
/// (`$TTL` and the last explicit TTL carry on from an included file, as in NSD).
struct Parser<'r> {
    read: &'r dyn Fn(&Path) -> std::io::Result<String>,
    /// Every file read: the zone file first, then each included one.
    files: Vec<PathBuf>,
    diags: Diagnostics,
    records: Vec<Record>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
}

/// The state one file has of its own: an included file starts from the including file's
/// origin (or the one `$INCLUDE` gives) and owner, and changes to them end with it (RFC 1035
/// §5.1: "$INCLUDE ... does not change the origin of the parent file").
#[derive(Clone)]
struct Ctx {
    file: usize,
    origin: Name,
    last_owner: Option<Name>,
}

/// `path` with `.` and `..` taken out, without touching the file system: two spellings of one
/// path compare equal, so an include loop is found whatever the relative paths look like.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

impl Parser<'_> {
    fn at(&self, ctx: &Ctx, line: u32, col: u32) -> Loc {
        Loc::new(&self.files[ctx.file], line, col)
    }

    fn err(&mut self, ctx: &Ctx, t: &lex::Token, message: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::new(self.at(ctx, t.line, t.col), message);
        self.diags.push(d);
        self.diags.0.last_mut().expect("just pushed")
    }

    /// Reads one file's entries. `stack` holds the normalized paths of the files being read,
    /// outermost first, to find include loops.
    fn file(&mut self, ctx: &mut Ctx, text: &str, stack: &mut Vec<PathBuf>) {
        let entries = match lex::lex(text) {
            Ok(e) => e,
            Err(e) => {
                let d = Diagnostic::new(self.at(ctx, e.line, e.col), e.message);
                self.diags.push(d);
                return;
            }
        };
        for entry in &entries {
            let first = &entry.tokens[0];
            if !entry.blank_owner && !first.quoted && first.text.starts_with('$') {
                self.directive(ctx, &entry.tokens, stack);
            } else {
                self.record(ctx, &entry.tokens, entry.blank_owner);
            }
        }
    }

    fn directive(&mut self, ctx: &mut Ctx, toks: &[lex::Token], stack: &mut Vec<PathBuf>) {
        let first = &toks[0];
        let arg = toks.get(1);
        match first.text.to_ascii_uppercase().as_str() {
            "$ORIGIN" => match arg.map(|a| Name::parse(&a.text, Some(&ctx.origin))) {
                Some(Ok(n)) if toks.len() == 2 => ctx.origin = n,
                Some(Err(e)) => {
                    self.err(ctx, &toks[1], format!("invalid $ORIGIN: {e}"));
                }
                _ => {
                    self.err(ctx, first, "$ORIGIN takes exactly one domain name");
                }
            },
            "$TTL" => match arg.and_then(|a| rdata::parse_ttl(&a.text)) {
                Some(t) if toks.len() == 2 => self.default_ttl = Some(t),
                _ => {
                    self.err(ctx, first, "$TTL takes exactly one TTL")
                        .hint("for example: $TTL 3600 or $TTL 1h");
                }
            },
            "$INCLUDE" => self.include(ctx, toks, stack),
            "$GENERATE" => self.generate(ctx, toks),
            other => {
                self.err(ctx, first, format!("unsupported directive {other}"))
                    .hint("supported directives: $ORIGIN, $TTL, $INCLUDE, $GENERATE");
            }
        }
    }

    /// `$INCLUDE file [origin]`: the file is read as if it stood here, relative to the
    /// including file's directory.
    fn include(&mut self, ctx: &mut Ctx, toks: &[lex::Token], stack: &mut Vec<PathBuf>) {
        let first = &toks[0];
        if !(2..=3).contains(&toks.len()) {
            self.err(ctx, first, "$INCLUDE takes a file name and, optionally, an origin")
                .hint("for example: $INCLUDE hosts.zone or $INCLUDE hosts.zone sub.example.com.");
            return;
        }
        let origin = match toks.get(2).map(|t| Name::parse(&t.text, Some(&ctx.origin))) {
            None => ctx.origin.clone(),
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                self.err(ctx, &toks[2], format!("invalid $INCLUDE origin: {e}"));
                return;
            }
        };
        let name = &toks[1];
        let dir = self.files[ctx.file].parent().unwrap_or(Path::new(""));
        let path = dir.join(&name.text);
        let key = normalize(&path);
        if let Some(i) = stack.iter().position(|p| *p == key) {
            let chain: Vec<String> =
                stack[i..].iter().chain([&key]).map(|p| p.display().to_string()).collect();
            self.err(ctx, name, format!("$INCLUDE loop: {}", chain.join(" includes ")))
                .hint("a zone file cannot include itself, directly or through another file");
            return;
        }
        if stack.len() >= MAX_INCLUDE_DEPTH {
            self.err(ctx, name, format!("$INCLUDE nested more than {MAX_INCLUDE_DEPTH} deep"));
            return;
        }
        let text = match (self.read)(&path) {
            Ok(t) => t,
            Err(e) => {
                self.err(ctx, name, format!("cannot read included file {}: {e}", path.display()))
                    .hint("an included path is relative to the directory of the file that includes it");
                return;
            }
        };
        if self.files.len() > u16::MAX as usize {
            self.err(ctx, name, "too many included files");
            return;
        }
        self.files.push(path);
        let mut inner =
            Ctx { file: self.files.len() - 1, origin, last_owner: ctx.last_owner.clone() };
        stack.push(key);
        self.file(&mut inner, &text, stack);
        stack.pop();
    }

    /// `$GENERATE start-stop[/step] owner [ttl] [class] type rdata`, as BIND reads it: each
    /// `$` in the owner and the rdata is the iterator, `${offset[,width[,base]]}` shifts and
    /// formats it, `$$` and `\$` are a literal `$`. The rdata may be one quoted string (split
    /// into fields after the iterator is put in, as BIND does) or several fields.
    fn generate(&mut self, ctx: &mut Ctx, toks: &[lex::Token]) {
        let first = &toks[0];
        let usage = "$GENERATE start-stop[/step] owner [ttl] [class] type rdata";
        if toks.len() < 5 {
            self.err(ctx, first, "$GENERATE needs a range, an owner, a type and rdata")
                .hint(format!("syntax: {usage}"));
            return;
        }
        let range = &toks[1];
        let Some((start, stop, step)) = parse_range(&range.text) else {
            self.err(ctx, range, format!("invalid $GENERATE range {:?}", range.text)).hint(
                "start-stop or start-stop/step, with 0 <= start <= stop < 2^31 and step >= 1",
            );
            return;
        };
        let count = (stop - start) / step + 1;
        if count > MAX_GENERATE {
            self.err(
                ctx,
                range,
                format!("$GENERATE range makes {count} records, more than {MAX_GENERATE}"),
            );
            return;
        }
        // The owner, then everything up to the type as written, then the rdata.
        let owner = &toks[2];
        let mut i = 3;
        while i < toks.len() && i < 5 && is_ttl_or_class(&toks[i].text) {
            i += 1;
        }
        if i + 1 >= toks.len() {
            self.err(ctx, first, "$GENERATE needs a type and rdata after the owner")
                .hint(format!("syntax: {usage}"));
            return;
        }
        let fixed = &toks[3..=i];
        let rdata = &toks[i + 1..];
        let mut value = start;
        while value <= stop {
            let before = self.diags.len();
            match self.generated_entry(owner, fixed, rdata, value) {
                Ok(line) => self.record(ctx, &line, false),
                Err((t, message)) => {
                    self.err(ctx, t, message);
                }
            }
            // One bad template would fail the same way every time: report it once.
            if self.diags.len() > before {
                return;
            }
            value += step;
        }
    }

    /// One record line of a `$GENERATE`, with `value` put in.
    fn generated_entry<'t>(
        &self,
        owner: &'t lex::Token,
        fixed: &[lex::Token],
        rdata: &'t [lex::Token],
        value: u64,
    ) -> Result<Vec<lex::Token>, (&'t lex::Token, String)> {
        let subst = |t: &'t lex::Token| {
            expand(&t.text, value).map_err(|e| (t, e)).map(|text| lex::Token { text, ..t.clone() })
        };
        let mut line = vec![subst(owner)?];
        line.extend_from_slice(fixed);
        match rdata {
            [one] if one.quoted => {
                let text = subst(one)?.text;
                let entries = lex::lex(&text).map_err(|e| (one, e.message))?;
                line.extend(entries.into_iter().flat_map(|e| e.tokens).map(|t| lex::Token {
                    line: one.line,
                    col: one.col,
                    ..t
                }));
            }
            _ => {
                for t in rdata {
                    line.push(subst(t)?);
                }
            }
        }
        Ok(line)
    }

    /// One record line: owner (or blank for the previous one), TTL and class in either order,
    /// type, rdata.
    fn record(&mut self, ctx: &mut Ctx, toks: &[lex::Token], blank_owner: bool) {
        let first = &toks[0];
        let (owner, mut i) = if blank_owner {
            match &ctx.last_owner {
                Some(o) => (o.clone(), 0),
                None => {
                    self.err(
                        ctx,
                        first,
                        "record has no owner name and there is no previous record to take it from",
                    );
                    return;
                }
            }
        } else {
            match Name::parse(&first.text, Some(&ctx.origin)) {
                Ok(n) => (n.to_lowercase(), 1),
                Err(e) => {
                    self.err(ctx, first, format!("invalid owner name {:?}: {e}", first.text));
                    return;
                }
            }
        };
        ctx.last_owner = Some(owner.clone());

        // TTL and class may come in either order before the type (RFC 1035 §5.1).
        let mut ttl = None;
        let mut bad = false;
        for _ in 0..2 {
            let Some(t) = toks.get(i) else { break };
            if t.text.starts_with(|c: char| c.is_ascii_digit()) {
                match rdata::parse_ttl(&t.text) {
                    Some(v) if v <= i32::MAX as u32 => ttl = Some(v),
                    _ => {
                        self.err(ctx, t, format!("invalid TTL {:?}", t.text));
                        bad = true;
                    }
                }
                i += 1;
            } else if is_class(&t.text) {
                if !t.text.eq_ignore_ascii_case("IN") {
                    self.err(ctx, t, format!("class {} is not supported", t.text))
                        .hint("Meridian serves class IN only");
                    bad = true;
                }
                i += 1;
            }
        }
        if bad {
            return;
        }
        let Some(type_tok) = toks.get(i) else {
            let last = toks.last().unwrap_or(first);
            self.err(ctx, last, "record has no type");
            return;
        };
        let Some(rtype) = rdata::parse_type(&type_tok.text) else {
            self.err(ctx, type_tok, format!("unknown record type {:?}", type_tok.text))
                .hint("use a type mnemonic such as A, AAAA, CNAME, MX, TXT, or TYPEnnn");
            return;
        };
        // RFC 1035: an omitted TTL is the last explicit one; RFC 2308's $TTL takes precedence.
        if ttl.is_some() {
            self.last_ttl = ttl;
        }
        let Some(ttl) = ttl.or(self.default_ttl).or(self.last_ttl) else {
            self.err(ctx, first, "record has no TTL and no $TTL precedes it")
                .hint("add `$TTL 3600` at the top of the zone file");
            return;
        };
        let rdata_toks = &toks[i + 1..];
        match rdata::parse(rtype, rdata_toks, &ctx.origin) {
            Ok(rd) => self.records.push(Record {
                owner,
                rtype,
                ttl,
                rdata: rd,
                file: ctx.file as u16,
                line: first.line,
                col: first.col,
            }),
            Err(e) => {
                let t = e.token.and_then(|k| rdata_toks.get(k)).unwrap_or(type_tok);
                self.err(ctx, t, e.message);
            }
        }
    }
}

fn is_class(text: &str) -> bool {
    matches!(text.to_ascii_uppercase().as_str(), "IN" | "CH" | "HS" | "CS")
        || text.to_ascii_uppercase().starts_with("CLASS")
}

fn is_ttl_or_class(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_digit()) || is_class(text)
}

/// A `$GENERATE` range: `start-stop` or `start-stop/step`, BIND's bounds.
fn parse_range(text: &str) -> Option<(u64, u64, u64)> {
    let (range, step) = match text.split_once('/') {
        Some((r, s)) => (r, s.parse::<u64>().ok()?),
        None => (text, 1),
    };
    let (start, stop) = range.split_once('-')?;
    let (start, stop) = (start.parse::<u64>().ok()?, stop.parse::<u64>().ok()?);
    let max = (1u64 << 31) - 1;
    (start <= stop && stop <= max && (1..=max).contains(&step)).then_some((start, stop, step))
}

/// A `$GENERATE` template with the iterator `value` put in.
fn expand(template: &str, value: u64) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 8);
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // An escape stays as it is, for the name or rdata parser: `\$` is then a `$`.
            '\\' => {
                out.push('\\');
                if let Some(e) = chars.next() {
                    out.push(e);
                }
            }
            '$' if chars.peek() == Some(&'$') => {
                chars.next();
                out.push_str("\\$");
            }
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let mut spec = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => spec.push(c),
                        None => return Err(format!("unclosed ${{ in {template:?}")),
                    }
                }
                out.push_str(&modified(&spec, value)?);
            }
            '$' => out.push_str(&value.to_string()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The iterator formatted by a `${offset[,width[,base]]}` modifier.
fn modified(spec: &str, value: u64) -> Result<String, String> {
    let bad = || {
        format!(
            "invalid $GENERATE modifier ${{{spec}}}: expected ${{offset[,width[,base]]}}, base one of d o x X n N"
        )
    };
    let mut parts = spec.split(',');
    let offset: i64 = parts.next().unwrap_or("0").trim().parse().map_err(|_| bad())?;
    let width: usize = match parts.next() {
        Some(w) => w.trim().parse().map_err(|_| bad())?,
        None => 0,
    };
    let base = parts.next().map(str::trim).unwrap_or("d");
    if parts.next().is_some() || width > 255 {
        return Err(bad());
    }
    let v = i64::try_from(value).ok().and_then(|v| v.checked_add(offset));
    let Some(v) = v.and_then(|v| u64::try_from(v).ok()) else {
        return Err(format!("$GENERATE modifier ${{{spec}}} makes a negative value from {value}"));
    };
    Ok(match base {
        "d" => format!("{v:0width$}"),
        "o" => format!("{v:0width$o}"),
        "x" => format!("{v:0width$x}"),
        "X" => format!("{v:0width$X}"),
        "n" | "N" => nibbles(v, width, base == "N"),
        _ => return Err(bad()),
    })
}

/// BIND's nibble form: hex digits least significant first, one per label, for ip6.arpa
/// names; `width` counts the characters written, dots included, as BIND counts them.
fn nibbles(mut v: u64, mut width: usize, upper: bool) -> String {
    let digits: &[u8; 16] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    let mut out = String::new();
    loop {
        out.push(digits[(v & 0xf) as usize] as char);
        v >>= 4;
        width = width.saturating_sub(1);
        if width > 0 || v != 0 {
            out.push('.');
            width = width.saturating_sub(1);
        }
        if v == 0 && width == 0 {
            return out;
        }
    }
}

/// Groups records into nodes and RRsets, checks the zone's structural rules, and pre-encodes.
fn build(origin: Name, records: Vec<Record>, files: &[PathBuf], diags: &mut Diagnostics) -> Zone {
    let at = |r: &Record| Loc::new(&files[r.file as usize], r.line, r.col);
    let type_name = rdata::type_name;
    let mut by_owner: BTreeMap<Name, Vec<Record>> = BTreeMap::new();
    for r in records {
        if !r.owner.is_within(&origin) {
            diags.push(
                Diagnostic::new(at(&r), format!("{} is outside the zone {origin}", r.owner))
                    .with_hint("names without a trailing dot are relative to $ORIGIN"),
            );
            continue;
        }
        by_owner.entry(r.owner.clone()).or_default().push(r);
    }

    // Delegation points: NS anywhere but the apex.
    let cuts: Vec<Name> = by_owner
        .iter()
        .filter(|(o, rs)| **o != origin && rs.iter().any(|r| r.rtype == T_NS))
        .map(|(o, _)| o.clone())
        .collect();

    let apex_records = by_owner.get(&origin).map(Vec::as_slice).unwrap_or(&[]);
    let soas: Vec<&Record> = apex_records.iter().filter(|r| r.rtype == T_SOA).collect();
    let first_loc = || Loc::new(&files[0], 1, 1);
    match soas.len() {
        0 => diags.push(
            Diagnostic::new(first_loc(), format!("zone {origin} has no SOA record at its apex"))
                .with_hint("add `@ IN SOA ns1 hostmaster 1 3600 600 86400 300`"),
        ),
        1 => {}
        _ => diags.push(Diagnostic::new(
            at(soas[1]),
            format!("zone {origin} has more than one SOA record"),
        )),
    }
    if !apex_records.iter().any(|r| r.rtype == T_NS) {
        diags.push(
            Diagnostic::new(first_loc(), format!("zone {origin} has no NS records at its apex"))
                .with_hint("add `@ IN NS ns1` and an address record for ns1"),
        );
    }

    for (owner, rs) in &by_owner {
        let cname = rs.iter().filter(|r| r.rtype == T_CNAME).collect::<Vec<_>>();
        if let Some(first) = cname.first() {
            if let Some(other) = rs.iter().find(|r| r.rtype != T_CNAME) {
                diags.push(
                    Diagnostic::new(
                        at(first),
                        format!("{owner} has a CNAME and other data ({})", type_name(other.rtype)),
                    )
                    .with_hint(format!(
                        "the other record is at {}; a CNAME must stand alone",
                        if other.file == first.file {
                            format!("line {}", other.line)
                        } else {
                            format!("{}:{}", files[other.file as usize].display(), other.line)
                        }
                    )),
                );
            }
            if cname.len() > 1 && cname.iter().any(|c| c.rdata != first.rdata) {
                diags.push(Diagnostic::new(
                    at(cname[1]),
                    format!("{owner} has more than one CNAME"),
                ));
            }
        }
        for r in rs {
            if r.rtype == T_SOA && *owner != origin {
                diags.push(Diagnostic::new(at(r), "SOA records belong only at the zone apex"));
            }
            if r.rtype == T_DNAME {
                diags.push(Diagnostic::new(at(r), "DNAME records are not supported"));
            }
            if r.rtype == T_NS && owner.is_wildcard() {
                diags.push(Diagnostic::new(at(r), "NS records cannot be owned by a wildcard name"));
            }
        }
        // Below a delegation point only glue may exist; at it, NS, DS and glue.
        if let Some(cut) = cuts.iter().find(|c| owner.is_within(c)) {
            for r in rs {
                let allowed = matches!(r.rtype, T_A | T_AAAA)
                    || (owner == cut && matches!(r.rtype, T_NS | T_DS));
                if !allowed {
                    diags.push(
                        Diagnostic::new(
                            at(r),
                            format!("{} record at {owner} is hidden by the delegation to {cut}", type_name(r.rtype)),
                        )
                        .with_hint("only NS, DS and glue address records may be at or below a delegation point"),
                    );
                }
            }
        }
    }

    // Nodes: every owner and every ancestor down to the apex. Apex first, so it is node 0.
    let mut names: BTreeMap<Name, Vec<Record>> = BTreeMap::new();
    names.insert(origin.clone(), Vec::new());
    for (owner, rs) in by_owner {
        let mut n = owner.parent();
        while let Some(p) = n {
            if !p.is_within(&origin) || names.contains_key(&p) {
                break;
            }
            names.insert(p.clone(), Vec::new());
            n = p.parent();
        }
        names.insert(owner, rs);
    }

    // Address records by owner, for glue and additional data.
    let addresses: HashMap<Name, Vec<(u16, u32, Vec<u8>)>> = names
        .iter()
        .map(|(n, rs)| {
            let addrs = rs
                .iter()
                .filter(|r| matches!(r.rtype, T_A | T_AAAA))
                .map(|r| (r.rtype, r.ttl, r.rdata.wire.clone()))
                .collect::<Vec<_>>();
            (n.clone(), addrs)
        })
        .filter(|(_, a)| !a.is_empty())
        .collect();

    let mut record_count = 0;
    let mut order: Vec<Name> = Vec::with_capacity(names.len());
    order.push(origin.clone());
    order.extend(names.keys().filter(|n| **n != origin).cloned());
    let ids: HashMap<Name, NodeId> =
        order.iter().enumerate().map(|(i, n)| (n.clone(), i as NodeId)).collect();
    let mut data: Vec<Node> = Vec::with_capacity(order.len());
    let mut soa_negative = Vec::new();
    let mut soa_negative_relocs = Box::default();
    // The root zone's apex is one byte: a pointer to it would only be longer.
    let apex = (!origin.is_root()).then(|| origin.wire());
    for name in &order {
        let rs = names.remove(name).unwrap_or_default();
        let mut by_type: BTreeMap<u16, Vec<Record>> = BTreeMap::new();
        for r in rs {
            by_type.entry(r.rtype).or_default().push(r);
        }
        let mut rrsets = Vec::with_capacity(by_type.len());
        for (rtype, mut recs) in by_type {
            // RFC 2181 §5: an RRset has one TTL and no duplicate records; the first record's
            // TTL is the RRset's, as BIND does.
            let ttl = recs[0].ttl;
            let mut seen: Vec<Vec<u8>> = Vec::new();
            recs.retain(|r| {
                let dup = seen.contains(&r.rdata.wire);
                seen.push(r.rdata.wire.clone());
                !dup
            });
            record_count += recs.len();
            let mut tails = Vec::new();
            let mut relocs = Vec::new();
            // Where each record's target name starts in `tails`, for the additional records.
            let mut target_at = Vec::with_capacity(recs.len());
            for (i, r) in recs.iter().enumerate() {
                let start = tails.len();
                let (rdata, at) = compress(rtype, &r.rdata.wire, apex);
                push_tail(&mut tails, rtype, ttl, &rdata);
                relocs.extend(
                    at.iter().map(|a| Reloc { record: i as u16, at: (start + 10 + a) as u16 }),
                );
                // MX's exchange follows its preference, SRV's target its three numbers.
                let skip = match rtype {
                    T_MX => 2,
                    T_SRV => 6,
                    _ => 0,
                };
                target_at.push((start + 10 + skip) as u16);
            }
            if rtype == T_SOA && *name == origin {
                let minimum = recs[0]
                    .rdata
                    .wire
                    .rchunks(4)
                    .next()
                    .map_or(0, |m| u32::from_be_bytes([m[0], m[1], m[2], m[3]]));
                let (rdata, at) = compress(T_SOA, &recs[0].rdata.wire, apex);
                push_tail(&mut soa_negative, T_SOA, ttl.min(minimum), &rdata);
                soa_negative_relocs = at.iter().map(|a| (10 + a) as u16).collect();
            }
            let (mut extra, mut extra_plain, mut extra_count) = (Vec::new(), Vec::new(), 0u16);
            let mut extra_relocs = Vec::new();
            if matches!(rtype, T_NS | T_MX | T_SRV) {
                for (i, r) in recs.iter().enumerate() {
                    let Some(target) = &r.rdata.target else {
                        continue;
                    };
                    let target = target.to_lowercase();
                    for (atype, attl, wire) in addresses.get(&target).into_iter().flatten() {
                        extra_relocs.push(ExtraReloc {
                            at: extra.len() as u16,
                            record: i as u16,
                            tail_at: target_at[i],
                        });
                        extra.extend_from_slice(&[0xc0, 0]);
                        push_tail(&mut extra, *atype, *attl, wire);
                        extra_plain.extend_from_slice(target.wire());
                        push_tail(&mut extra_plain, *atype, *attl, wire);
                        extra_count += 1;
                    }
                }
            }
            let target = if rtype == T_CNAME {
                recs[0].rdata.target.as_ref().map(Name::to_lowercase)
            } else {
                None
            };
            rrsets.push(RRset {
                rtype,
                ttl,
                count: recs.len() as u16,
                tails: tails.into(),
                relocs: relocs.into(),
                extra: extra.into(),
                extra_count,
                extra_relocs: extra_relocs.into(),
                extra_plain: extra_plain.into(),
                target,
            });
        }
        let cut = *name != origin && rrsets.iter().any(|r| r.rtype == T_NS);
        data.push(Node { rrsets: rrsets.into(), cut, wildcard: None, profile: None });
    }
    for (name, &id) in &ids {
        if !name.is_wildcard() {
            continue;
        }
        if let Some(parent) = name.parent().and_then(|p| ids.get(&p).copied()) {
            data[parent as usize].wildcard = Some(id);
        }
    }
    let nodes = ids.into_iter().map(|(n, id)| (Box::<[u8]>::from(n.wire()), id)).collect();
    Zone {
        origin,
        nodes,
        data,
        soa_negative: soa_negative.into(),
        soa_negative_relocs,
        record_count,
        files: Box::new([]),
        transfer: Default::default(),
        history: std::sync::Arc::new([]),
    }
}

/// `rdata` of type `rtype` with every name that ends in `apex` cut to its labels before the
/// apex and a two-byte pointer (target blank), and the offsets of those pointers in it. Only
/// the types of RFC 1035 whose names RFC 3597 §4 allows to be compressed; others, and every
/// name outside the zone, are copied as they are.
fn compress(rtype: u16, rdata: &[u8], apex: Option<&[u8]>) -> (Vec<u8>, Vec<usize>) {
    // Where the names start: MX's exchange after its preference; SOA's RNAME right after
    // its MNAME (marked `None`).
    let names: &[Option<usize>] = match rtype {
        T_NS | T_CNAME | T_PTR => &[Some(0)],
        T_MX => &[Some(2)],
        T_SOA => &[Some(0), None],
        _ => &[],
    };
    let Some(apex) = apex.filter(|_| !names.is_empty()) else {
        return (rdata.to_vec(), Vec::new());
    };
    let mut out = Vec::with_capacity(rdata.len());
    let mut relocs = Vec::new();
    let mut pos = 0;
    for start in names {
        let start = start.unwrap_or(pos);
        out.extend_from_slice(&rdata[pos..start]);
        let end = start + name_len(&rdata[start..]);
        // Walk the name's labels: the first suffix that is the apex becomes the pointer.
        let mut p = start;
        while rdata[p] != 0 && !rdata[p..end].eq_ignore_ascii_case(apex) {
            p += 1 + rdata[p] as usize;
        }
        out.extend_from_slice(&rdata[start..p]);
        if rdata[p..end].eq_ignore_ascii_case(apex) {
            relocs.push(out.len());
            out.extend_from_slice(&[0xc0, 0]);
        } else {
            out.push(0);
        }
        pos = end;
    }
    out.extend_from_slice(&rdata[pos..]);
    (out, relocs)
}

/// `owner` and `tail` as one record with every pointer to the apex replaced by the apex's
/// name (and the rdata length fixed).
fn written_out(
    owner: &[u8],
    tail: &[u8],
    relocs: impl Iterator<Item = usize>,
    apex: &[u8],
) -> Box<[u8]> {
    let mut out = Vec::with_capacity(owner.len() + tail.len() + 16);
    out.extend_from_slice(owner);
    let at = out.len();
    let mut from = 0;
    for r in relocs {
        out.extend_from_slice(&tail[from..r]);
        out.extend_from_slice(apex);
        from = r + 2;
    }
    out.extend_from_slice(&tail[from..]);
    let rdlen = (out.len() - at - 10) as u16;
    out[at + 8..at + 10].copy_from_slice(&rdlen.to_be_bytes());
    out.into()
}

/// The length of the uncompressed wire name at the start of `wire`.
fn name_len(wire: &[u8]) -> usize {
    let mut p = 0;
    while wire[p] != 0 {
        p += 1 + wire[p] as usize;
    }
    p + 1
}

fn push_tail(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // class IN
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

#[cfg(test)]
mod tests;
