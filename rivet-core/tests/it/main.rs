//! rivet-core's integration tests: the pipeline language as a user meets it.

mod builder;
mod inputs;
mod sandbox;
mod support;
mod validation;
