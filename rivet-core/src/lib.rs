//! Rivet's core: domain types, the Lua sandbox, pipeline loading and validation, and input
//! typing. This crate does no I/O and knows neither tonic nor sea-orm.
//!
//! ```
//! let source = r#"
//!     return pipeline.define {
//!         name = "hello",
//!         stages = { { name = "greet", script = function() end } },
//!     }
//! "#;
//! let definition = rivet_core::check(source, "hello.lua").unwrap();
//! assert_eq!(definition.stages[0].name, "greet");
//! ```

pub mod backoff;
mod diagnostic;
mod dsl;
pub mod forge;
pub mod image;
pub mod inputs;
pub mod job;
pub mod limits;
mod loader;
pub mod model;
pub mod plugin;
pub mod protocol;
pub mod sandbox;
pub mod schedule;
pub mod settings;
pub mod text;
pub mod trace;
pub mod trigger;
mod validate;

pub use diagnostic::{Diagnostic, LoadError};
pub use inputs::{InputError, InputErrors, resolve};
pub use job::{Assignment, FailureReason, JobOrigin, JobState, LogLevel, LogLine, StageState};
pub use loader::{LoadedPipeline, check, load};
pub use model::{InputSpec, InputType, InputValue, PipelineDefinition, ResolvedInputs, StageSpec, Tag};
pub use sandbox::Limits;
pub use validate::StageFunctions;
