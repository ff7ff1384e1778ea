//! The one error type: every problem found in a file, each with file, line and path.

use std::fmt;

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The file as the caller named it.
    pub file: String,
    /// 1-based line; 0 when the problem is not tied to a line (the file cannot be read).
    pub line: usize,
    /// Where in the document (`flows[1].entities[0].mapping.Amount`); empty for the whole file.
    pub path: String,
    /// What is wrong, lowercase, without a final period. Never contains a secret value.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A configuration that cannot be used: every problem found, in file order.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The problems, sorted by line (never empty).
    pub problems: Vec<ConfigProblem>,
    /// The I/O error when the file could not be read.
    #[source]
    pub source: Option<std::io::Error>,
}

impl ConfigError {
    pub(crate) fn new(mut problems: Vec<ConfigProblem>) -> Self {
        // Stable: problems on one line keep the order they were found in.
        problems.sort_by_key(|p| p.line);
        problems.dedup();
        ConfigError {
            problems,
            source: None,
        }
    }

    /// True when some problem's rendered line contains `needle` (handy in tests and tools).
    pub fn mentions(&self, needle: &str) -> bool {
        self.problems.iter().any(|p| p.to_string().contains(needle))
    }
}

impl fmt::Display for ConfigError {
    /// One problem per line, `file:line: path: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Result alias of this crate.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
