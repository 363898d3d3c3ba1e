//! Domain names in wire form.
//!
//! Everything Meridian stores is a wire-form name (length-prefixed labels ending in the root
//! label), lowercased where it is used as a lookup key. Wire form is what arrives in a query,
//! so the hot path compares bytes without converting anything.

use std::fmt;

/// The longest name the protocol allows, root label included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// The longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// An owned wire-form domain name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Box<[u8]>);

/// Why a presentation-form name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty label in name")]
    EmptyLabel,
    #[error("label longer than 63 bytes")]
    LabelTooLong,
    #[error("name longer than 255 bytes")]
    NameTooLong,
    #[error("bad escape sequence in name")]
    BadEscape,
    #[error("relative name with no origin to complete it")]
    NoOrigin,
}

impl Name {
    /// The root name `.`.
    pub fn root() -> Name {
        Name(Box::new([0]))
    }

    /// Parses presentation format (`www.example.com.`, `@`, `www`), completing relative names
    /// with `origin`. `\X` and `\DDD` escapes are honoured.
    pub fn parse(text: &str, origin: Option<&Name>) -> Result<Name, NameError> {
        if text == "@" {
            return origin.cloned().ok_or(NameError::NoOrigin);
        }
        if text == "." {
            return Ok(Name::root());
        }
        let bytes = text.as_bytes();
        let mut wire = Vec::with_capacity(bytes.len() + 2);
        let mut label_start = 0;
        wire.push(0);
        let mut i = 0;
        let mut absolute = false;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'.' => {
                    let len = wire.len() - label_start - 1;
                    if len == 0 {
                        return Err(NameError::EmptyLabel);
                    }
                    wire[label_start] = len as u8;
                    if i + 1 == bytes.len() {
                        absolute = true;
                    } else {
                        label_start = wire.len();
                        wire.push(0);
                    }
                    i += 1;
                    continue;
                }
                b'\\' => {
                    let (value, used) = unescape(&bytes[i + 1..]).ok_or(NameError::BadEscape)?;
                    wire.push(value);
                    i += 1 + used;
                }
                _ => {
                    wire.push(b);
                    i += 1;
                }
            }
            if wire.len() - label_start - 1 > MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong);
            }
        }
        if !absolute {
            let len = wire.len() - label_start - 1;
            if len == 0 {
                return Err(NameError::EmptyLabel);
            }
            wire[label_start] = len as u8;
            let origin = origin.ok_or(NameError::NoOrigin)?;
            wire.extend_from_slice(origin.wire());
        } else {
            wire.push(0);
        }
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong);
        }
        Ok(Name(wire.into_boxed_slice()))
    }

    /// The wire bytes, root label included.
    pub fn wire(&self) -> &[u8] {
        &self.0
    }

    /// The wire length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True only for the root name.
    pub fn is_root(&self) -> bool {
        self.0.len() == 1
    }

    /// Never true: a wire name always has its root label. Present for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// A copy with ASCII letters lowercased, the form used as a lookup key.
    pub fn to_lowercase(&self) -> Name {
        let mut wire = self.0.clone();
        lowercase_in_place(&mut wire);
        Name(wire)
    }

    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        labels(&self.0).count()
    }

    /// True when `self` equals `zone` or lies below it (both lowercased).
    pub fn is_within(&self, zone: &Name) -> bool {
        is_suffix(&self.0, &zone.0)
    }

    /// The name with its first label removed; `None` for the root.
    pub fn parent(&self) -> Option<Name> {
        if self.is_root() {
            return None;
        }
        let skip = self.0[0] as usize + 1;
        Some(Name(self.0[skip..].into()))
    }

    /// True when the first label is `*`.
    pub fn is_wildcard(&self) -> bool {
        self.0.len() >= 2 && self.0[0] == 1 && self.0[1] == b'*'
    }
}

/// Iterates over the labels of a wire name (without the root label).
pub fn labels(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let len = *wire.get(pos)? as usize;
        if len == 0 {
            return None;
        }
        let label = wire.get(pos + 1..pos + 1 + len)?;
        pos += 1 + len;
        Some(label)
    })
}

/// Where the uncompressed wire name at `p` in `msg` ends (`None`: it runs past the end, or
/// has a pointer or a reserved label type).
pub fn plain_end(msg: &[u8], mut p: usize) -> Option<usize> {
    loop {
        let len = *msg.get(p)? as usize;
        if len & 0xc0 != 0 {
            return None;
        }
        p += 1 + len;
        if len == 0 {
            return Some(p);
        }
    }
}

/// Where the wire name at `p` in `msg`, possibly ending in a compression pointer, ends.
pub fn wire_end(msg: &[u8], mut p: usize) -> Option<usize> {
    loop {
        let len = *msg.get(p)? as usize;
        match len & 0xc0 {
            0xc0 => return Some(p + 2),
            0 if len == 0 => return Some(p + 1),
            0 => p += 1 + len,
            _ => return None,
        }
    }
}

/// Lowercases ASCII letters of a wire name in place (length bytes are never letters' range
/// issue: they are below 64, and `A`..`Z` are 65..90, so they are left alone).
pub fn lowercase_in_place(wire: &mut [u8]) {
    for b in wire {
        b.make_ascii_lowercase();
    }
}

/// True when `suffix` is a whole-label suffix of `name` (both wire form, same case).
pub fn is_suffix(name: &[u8], suffix: &[u8]) -> bool {
    if suffix.len() > name.len() {
        return false;
    }
    let start = name.len() - suffix.len();
    if &name[start..] != suffix {
        return false;
    }
    // The match must begin on a label boundary.
    let mut pos = 0;
    while pos < start {
        pos += name[pos] as usize + 1;
    }
    pos == start
}

/// Decodes one escape after a backslash: `\DDD` (decimal byte) or `\X` (the character
/// itself). Returns the byte and how many input bytes it used.
pub fn unescape(rest: &[u8]) -> Option<(u8, usize)> {
    match rest {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            let v = (a - b'0') as u32 * 100 + (b - b'0') as u32 * 10 + (c - b'0') as u32;
            u8::try_from(v).ok().map(|v| (v, 3))
        }
        [a, ..] if a.is_ascii_digit() => None,
        [x, ..] => Some((*x, 1)),
        [] => None,
    }
}

/// Writes a wire name in presentation format.
pub fn fmt_wire(wire: &[u8], f: &mut impl fmt::Write) -> fmt::Result {
    if wire.first().copied().unwrap_or(0) == 0 {
        return f.write_char('.');
    }
    for label in labels(wire) {
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    f.write_char('\\')?;
                    f.write_char(b as char)?;
                }
                0x21..=0x7e => f.write_char(b as char)?,
                _ => write!(f, "\\{b:03}")?,
            }
        }
        f.write_char('.')?;
    }
    Ok(())
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_wire(&self.0, f)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::parse(s, None).unwrap()
    }

    #[test]
    fn parse_and_display() {
        let origin = n("app.example.com.");
        assert_eq!(n("Www.Example.COM.").to_string(), "Www.Example.COM.");
        assert_eq!(Name::parse("www", Some(&origin)).unwrap().to_string(), "www.app.example.com.");
        assert_eq!(Name::parse("@", Some(&origin)).unwrap(), origin);
        assert_eq!(n(".").wire(), &[0]);
        assert_eq!(n("a\\.b.c.").label_count(), 2);
        assert_eq!(n("a\\.b.c.").to_string(), "a\\.b.c.");
        assert_eq!(n("\\065.").to_string(), "A.");
        assert_eq!(n("a.").wire(), &[1, b'a', 0]);
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(Name::parse("a..b.", None), Err(NameError::EmptyLabel));
        assert_eq!(Name::parse("www", None), Err(NameError::NoOrigin));
        assert_eq!(Name::parse("\\999.", None), Err(NameError::BadEscape));
        let long = "a".repeat(64) + ".";
        assert_eq!(Name::parse(&long, None), Err(NameError::LabelTooLong));
        let many = "abcdefghi.".repeat(26);
        assert_eq!(Name::parse(&many, None), Err(NameError::NameTooLong));
    }

    #[test]
    fn suffixes() {
        let zone = n("example.com.");
        assert!(n("www.example.com.").is_within(&zone));
        assert!(n("example.com.").is_within(&zone));
        assert!(!n("badexample.com.").is_within(&zone));
        assert!(!n("com.").is_within(&zone));
        assert_eq!(n("a.b.").parent().unwrap(), n("b."));
        assert!(n("*.b.").is_wildcard());
    }
}
