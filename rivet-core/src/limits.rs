//! The sizes a pipeline definition may have, and how much validation reports.
//!
//! A pipeline script is untrusted: every size it controls is capped here, so that
//! validating it takes time linear in its size and reports a bounded amount of text.
//! A definition over a limit gets one diagnostic naming the limit ("the pipeline has
//! 5000 stages; the limit is 200") instead of a check of each item.

use std::time::Duration;

/// The most inputs a pipeline may declare.
pub const MAX_INPUTS: usize = 256;
/// The most options one input may list.
pub const MAX_OPTIONS: usize = 256;
/// The most stages a pipeline may have.
pub const MAX_STAGES: usize = 200;
/// The most runner tags a pipeline may require.
pub const MAX_TAGS: usize = 64;
/// The most plugins a pipeline may name.
pub const MAX_PLUGINS: usize = 64;
/// The most secrets a pipeline may name.
pub const MAX_SECRETS: usize = 64;

/// The most fields one table of a definition (the pipeline, a stage, an input, a tag) may
/// have. Each allows a handful; past this the unknown ones get one diagnostic together.
pub const MAX_TABLE_FIELDS: usize = 256;

/// The longest pipeline name, in bytes.
pub const MAX_PIPELINE_NAME_BYTES: usize = 200;
/// The longest stage name, in bytes.
pub const MAX_STAGE_NAME_BYTES: usize = 63;
/// The longest input, plugin or secret name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// The longest runner tag key or value, in bytes.
pub const MAX_TAG_BYTES: usize = 128;
/// The longest container image reference, in bytes: a name of 255 bytes (the registries'
/// limit) with the longest tag and digest (see [`crate::image`]).
pub const MAX_IMAGE_BYTES: usize = crate::image::MAX_REFERENCE_BYTES;
/// The longest pipeline or input description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
/// The longest string option or default value of an input, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;

/// The shortest stage timeout.
pub const MIN_STAGE_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest stage timeout.
pub const MAX_STAGE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most diagnostics one load reports; the rest are counted in a last "and N more
/// problems" line.
pub const MAX_DIAGNOSTICS: usize = 50;
/// The longest diagnostic message or field path, in bytes; longer ones are truncated
/// with a visible marker.
pub const MAX_DIAGNOSTIC_BYTES: usize = 1024;
/// How much of an offending key or value a diagnostic quotes, in bytes.
pub const MAX_QUOTED_BYTES: usize = 64;
/// Keys longer than this get no "did you mean" suggestion: no allowed field is nearly
/// that long, and edit distance costs the product of the two lengths.
pub const MAX_SUGGESTED_KEY_BYTES: usize = 64;
