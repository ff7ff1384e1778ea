//! Collects problems with their line numbers.

use std::ops::Range;

use crate::error::ConfigProblem;
use crate::path::{Located, Path};

/// Collects every problem of one file.
pub struct Problems<'a> {
    file: &'a str,
    doc: &'a Located<'a>,
    pub(crate) list: Vec<ConfigProblem>,
}

impl<'a> Problems<'a> {
    pub fn new(file: &'a str, doc: &'a Located<'a>) -> Self {
        Problems {
            file,
            doc,
            list: Vec::new(),
        }
    }

    /// A problem at `path`, on the line of the deepest node of `path` that exists.
    pub fn at(&mut self, path: &Path, message: impl Into<String>) {
        let line = self.doc.line(path);
        self.push(line, path, message.into());
    }

    /// A problem at `path`, on the line of `span`.
    pub fn at_span(&mut self, path: &Path, span: &Range<usize>, message: impl Into<String>) {
        let line = self.doc.line_of(span);
        self.push(line, path, message.into());
    }

    fn push(&mut self, line: usize, path: &Path, message: String) {
        self.list.push(ConfigProblem {
            file: self.file.to_string(),
            line,
            path: path.to_string(),
            message,
        });
    }

    /// Number of problems so far.
    pub fn len(&self) -> usize {
        self.list.len()
    }
}
