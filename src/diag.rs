//! Diagnostics for configuration and zone files, rendered like a compiler's:
//!
//! ```text
//! error: meridian.toml:14:11: zone "app.example.com." is defined twice
//!   = hint: the first definition is at meridian.toml:9:1
//! ```
//!
//! Loading never stops at the first problem it can recover from: every problem is collected,
//! then all of them are reported, sorted by file and position.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a source file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub file: PathBuf,
    pub line: u32,
    pub col: u32,
}

impl Loc {
    pub fn new(file: impl Into<PathBuf>, line: u32, col: u32) -> Loc {
        Loc { file: file.into(), line, col }
    }

    /// The location of byte offset `offset` in `text`.
    pub fn from_offset(file: &Path, text: &str, offset: usize) -> Loc {
        let offset = offset.min(text.len());
        let before = &text[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() as u32 + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = text[line_start..offset].chars().count() as u32 + 1;
        Loc { file: file.to_path_buf(), line, col }
    }
}

/// Where each line of a text starts, so that many offsets turn into line:col in O(log n)
/// each ([`Loc::from_offset`] scans from the start: fine once, quadratic for every profile of
/// a large configuration).
#[derive(Debug, Clone)]
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Lines { starts }
    }

    /// The same as `Loc::from_offset(file, text, offset)`, for the `text` this was made from.
    pub fn loc(&self, file: &Path, text: &str, offset: usize) -> Loc {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        let col = text[start..offset].chars().count() as u32 + 1;
        Loc { file: file.to_path_buf(), line: line as u32, col }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One problem found in a configuration or zone file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub loc: Loc,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(loc: Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic { loc, message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the hint of a diagnostic already pushed.
    pub fn hint(&mut self, hint: impl Into<String>) {
        self.hint = Some(hint.into());
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}: {}", self.loc, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  = hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found while loading; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// Sorts by file and position, and drops exact repeats.
    pub fn sorted(mut self) -> Diagnostics {
        self.0.sort_by(|a, b| a.loc.cmp(&b.loc).then_with(|| a.message.cmp(&b.message)));
        self.0.dedup();
        self
    }

    /// `Ok(value)` when nothing was reported, otherwise every diagnostic.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.is_empty() { Ok(value) } else { Err(self.sorted()) }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_index_agrees_with_the_scan() {
        let text = "a = 1\n\nb = \"é\"\nc";
        let lines = super::Lines::new(text);
        let p = std::path::Path::new("t");
        for offset in 0..=text.len() + 2 {
            if text.is_char_boundary(offset.min(text.len())) {
                assert_eq!(lines.loc(p, text, offset), super::Loc::from_offset(p, text, offset));
            }
        }
    }

    use super::*;

    #[test]
    fn offsets_become_line_and_column() {
        let text = "a = 1\nbb = 2\n";
        let loc = Loc::from_offset(Path::new("x.toml"), text, 7);
        assert_eq!(loc.to_string(), "x.toml:2:2");
        assert_eq!(Loc::from_offset(Path::new("x"), text, 0).to_string(), "x:1:1");
    }

    #[test]
    fn renders_with_hint() {
        let d = Diagnostic::new(Loc::new("m.toml", 3, 5), "bad").with_hint("try good");
        assert_eq!(d.to_string(), "error: m.toml:3:5: bad\n  = hint: try good");
    }
}
