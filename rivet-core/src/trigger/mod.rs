//! Which forge events start a pipeline, and with which inputs.
//!
//! A trigger pairs a pipeline with a [`TriggerFilter`]. When a webhook arrives, the
//! orchestrator parses it into a [`ForgeEvent`] (see [`crate::forge::webhook`]), starts every
//! pipeline of the repository whose filter [`matches`](TriggerFilter::matches) it, and
//! launches it with [`launch_inputs`]: the event's standard inputs that the pipeline
//! declares, plus the trigger's fixed inputs. Nothing here does I/O.

mod glob;
mod inputs;

use serde::{Deserialize, Serialize};

use crate::forge::webhook::{EventKind, ForgeEvent};

pub use self::glob::{Glob, MAX_GLOB_BYTES};
pub use self::inputs::{EVENT_INPUTS, event_inputs, launch_inputs};

/// The most patterns one list of a filter (branches, tags or paths) may hold.
pub const MAX_GLOBS: usize = 64;

/// Why a trigger filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// A glob pattern is empty.
    #[error("empty glob pattern")]
    EmptyGlob,
    /// A glob pattern is longer than [`MAX_GLOB_BYTES`].
    #[error("glob `{pattern}` is {len} bytes long; the limit is {MAX_GLOB_BYTES}")]
    GlobTooLong {
        /// The pattern's start.
        pattern: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A glob pattern does not parse.
    #[error("invalid glob `{pattern}`: {reason}")]
    InvalidGlob {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A list has more than [`MAX_GLOBS`] patterns.
    #[error("{list}: {count} patterns; the limit is {MAX_GLOBS}")]
    TooManyGlobs {
        /// `branches`, `tags` or `paths`.
        list: &'static str,
        /// How many there are.
        count: usize,
    },
}

/// Every problem of one trigger filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct TriggerErrors(pub Vec<TriggerError>);

/// Which events start a pipeline. An empty list puts no condition: a filter with every list
/// empty matches every event.
///
/// Each list constrains the events it is about: `branches` the branch pushed to and the
/// branch a pull request targets, `tags` the tag pushed, `paths` the files a push changed.
/// So `branches = ["main"]` alone still lets tags through; name the `events` too
/// (`events = [Push, PullRequest]`) to keep them out.
///
/// It serialises as its patterns (`{"events": ["push"], "branches": ["main"]}`, every list
/// optional), and deserialising checks them as [`TriggerFilter::new`] does.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "FilterSpec", into = "FilterSpec")]
pub struct TriggerFilter {
    events: Vec<EventKind>,
    branches: Vec<Glob>,
    tags: Vec<Glob>,
    paths: Vec<Glob>,
}

impl TriggerFilter {
    /// A filter from the patterns as written, checking them all and reporting every problem.
    pub fn new<S: AsRef<str>>(
        events: Vec<EventKind>,
        branches: &[S],
        tags: &[S],
        paths: &[S],
    ) -> Result<TriggerFilter, TriggerErrors> {
        let mut errors = Vec::new();
        let mut unique = Vec::new();
        for kind in events {
            if !unique.contains(&kind) {
                unique.push(kind);
            }
        }
        let mut globs = |list: &'static str, patterns: &[S]| -> Vec<Glob> {
            if patterns.len() > MAX_GLOBS {
                errors.push(TriggerError::TooManyGlobs { list, count: patterns.len() });
                return Vec::new();
            }
            patterns.iter().filter_map(|p| Glob::new(p.as_ref()).map_err(|e| errors.push(e)).ok()).collect()
        };
        let filter = TriggerFilter {
            events: unique,
            branches: globs("branches", branches),
            tags: globs("tags", tags),
            paths: globs("paths", paths),
        };
        if errors.is_empty() { Ok(filter) } else { Err(TriggerErrors(errors)) }
    }

    /// The kinds of event that match; empty for all.
    pub fn events(&self) -> &[EventKind] {
        &self.events
    }

    /// The branch patterns; empty for any branch.
    pub fn branches(&self) -> &[Glob] {
        &self.branches
    }

    /// The tag patterns; empty for any tag.
    pub fn tags(&self) -> &[Glob] {
        &self.tags
    }

    /// The path patterns; empty for any change.
    pub fn paths(&self) -> &[Glob] {
        &self.paths
    }

    /// Whether `event` should start the pipeline.
    ///
    /// A pull request is matched on the branch it targets, not its head: `branches =
    /// ["main"]` builds pull requests into `main`. An event whose changed paths are unknown
    /// (`changed_paths` is `None`: pull requests, tags, new branches, very large pushes)
    /// passes the `paths` condition, since skipping a build that was needed is worse than
    /// running one that was not.
    pub fn matches(&self, event: &ForgeEvent) -> bool {
        if !self.events.is_empty() && !self.events.contains(&event.kind) {
            return false;
        }
        let branch = match event.kind {
            EventKind::Push => event.branch.as_deref(),
            EventKind::PullRequest => event.base_branch.as_deref(),
            EventKind::Tag => None,
        };
        if let Some(branch) = branch
            && !any_matches(&self.branches, branch)
        {
            return false;
        }
        if let Some(tag) = event.tag.as_deref()
            && !any_matches(&self.tags, tag)
        {
            return false;
        }
        match &event.changed_paths {
            Some(paths) if !self.paths.is_empty() => paths.iter().any(|path| any_matches(&self.paths, path)),
            _ => true,
        }
    }
}

/// A [`TriggerFilter`] as stored: its patterns as text.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    events: Vec<EventKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    branches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    paths: Vec<String>,
}

impl TryFrom<FilterSpec> for TriggerFilter {
    type Error = TriggerErrors;
    fn try_from(spec: FilterSpec) -> Result<TriggerFilter, TriggerErrors> {
        TriggerFilter::new(spec.events, &spec.branches, &spec.tags, &spec.paths)
    }
}

impl From<TriggerFilter> for FilterSpec {
    fn from(filter: TriggerFilter) -> FilterSpec {
        let text = |globs: Vec<Glob>| globs.iter().map(|g| g.as_str().to_owned()).collect();
        FilterSpec {
            events: filter.events,
            branches: text(filter.branches),
            tags: text(filter.tags),
            paths: text(filter.paths),
        }
    }
}

/// Whether `globs` is empty or one of them matches `text`.
fn any_matches(globs: &[Glob], text: &str) -> bool {
    globs.is_empty() || globs.iter().any(|glob| glob.matches(text))
}

#[cfg(test)]
mod tests;
