//! rivet-core's integration tests: the pipeline language as a user meets it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod builder;
mod inputs;
mod sandbox;
mod support;
mod validation;
mod webhooks;
