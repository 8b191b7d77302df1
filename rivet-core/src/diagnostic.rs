//! Errors of loading a pipeline: every problem at once, each with file, line and field.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_DIAGNOSTIC_BYTES, MAX_DIAGNOSTICS};
use crate::text;

/// One problem in a pipeline script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The script's file name, as given to the loader.
    pub file: String,
    /// The 1-based line the problem is on; 0 when unknown.
    pub line: u32,
    /// The field path, e.g. `stages[2].name`; empty for problems of the script as a whole.
    pub field: String,
    /// What is wrong, as a lowercase sentence fragment.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE: field: message`, the format editors and CI logs understand.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a pipeline script could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The script is not valid: it did not parse, failed while running, or defined an
    /// invalid pipeline. Holds every problem found, in source order.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
    /// The sandbox itself could not be set up (out of memory before the script ran).
    #[error("failed to set up the lua sandbox: {0}")]
    Sandbox(String),
}

impl LoadError {
    /// The problems found, if the script was at fault.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            LoadError::Invalid(diagnostics) => diagnostics,
            LoadError::Sandbox(_) => &[],
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Collects diagnostics for one file: the first [`MAX_DIAGNOSTICS`], each at most
/// [`MAX_DIAGNOSTIC_BYTES`] long, and a count of the rest.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    file: String,
    items: Vec<Diagnostic>,
    /// Problems found after the first [`MAX_DIAGNOSTICS`].
    more: usize,
}

impl Diagnostics {
    pub(crate) fn new(file: &str) -> Self {
        Diagnostics { file: text::truncate(file, MAX_DIAGNOSTIC_BYTES).into_owned(), items: Vec::new(), more: 0 }
    }

    pub(crate) fn push(&mut self, line: u32, field: impl Into<String>, message: impl Into<String>) {
        if self.is_full() {
            self.more += 1;
            return;
        }
        let field = text::truncate_owned(field.into(), MAX_DIAGNOSTIC_BYTES);
        let message = text::truncate_owned(message.into(), MAX_DIAGNOSTIC_BYTES);
        self.items.push(Diagnostic { file: self.file.clone(), line, field, message });
    }

    /// Whether further problems are only counted: callers may skip the work of
    /// describing them.
    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= MAX_DIAGNOSTICS
    }

    /// Whether a problem was already reported for `field` or a field inside it.
    pub(crate) fn mentions(&self, field: &str) -> bool {
        self.items.iter().any(|d| d.field.starts_with(field))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn into_error(mut self) -> LoadError {
        self.items.sort_by_key(|d| d.line);
        if self.more > 0 {
            let line = self.items.last().map_or(0, |d| d.line);
            let message = format!("and {} more problems (only the first {MAX_DIAGNOSTICS} are reported)", self.more);
            self.items.push(Diagnostic { file: self.file.clone(), line, field: String::new(), message });
        }
        LoadError::Invalid(self.items)
    }
}
