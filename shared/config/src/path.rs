//! Paths into the document (`flows[1].entities[0].mapping.Amount`) and their line numbers.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A path from the document root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// The root.
    pub fn root() -> Self {
        Path(Vec::new())
    }
    /// This path plus a key.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    /// The path without its last step.
    pub fn parent(&self) -> Self {
        let mut p = self.clone();
        p.0.pop();
        p
    }
    /// This path plus an index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

fn is_bare(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare(k) {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The parsed document with spans, to turn paths and byte offsets into line numbers.
pub struct Located<'a> {
    text: &'a str,
    root: &'a Spanned<DeTable<'a>>,
}

/// The entry `key` of a table (tables are small: a scan is fine).
pub fn entry<'t, 'i>(
    table: &'t DeTable<'i>,
    key: &str,
) -> Option<(
    &'t Spanned<std::borrow::Cow<'i, str>>,
    &'t Spanned<DeValue<'i>>,
)> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
}

impl<'a> Located<'a> {
    pub fn new(text: &'a str, root: &'a Spanned<DeTable<'a>>) -> Self {
        Located { text, root }
    }

    /// 1-based line of a byte offset.
    pub fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// Line of a span (its start).
    pub fn line_of(&self, span: &Range<usize>) -> usize {
        self.line_at(span.start)
    }

    /// Line of the deepest existing node along `path`: a missing key reports the line of the
    /// table that should hold it.
    pub fn line(&self, path: &Path) -> usize {
        let mut span = self.root.span();
        let mut table: Option<&DeTable<'a>> = Some(self.root.get_ref());
        let mut array: Option<&[Spanned<DeValue<'a>>]> = None;
        for seg in &path.0 {
            let next = match seg {
                Seg::Key(k) => table.and_then(|t| entry(t, k)).map(|(_, v)| v),
                Seg::Index(i) => array.and_then(|a| a.get(*i)),
            };
            let Some(next) = next else { break };
            span = next.span();
            table = next.get_ref().as_table();
            array = next.get_ref().as_array().map(|a| &a[..]);
        }
        if span.start == 0 && span.end == 0 {
            1
        } else {
            self.line_of(&span)
        }
    }
}
