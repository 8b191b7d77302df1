//! Integration tests of the job executor against a real Podman service and the local test
//! images (`deploy/test-image/build.sh`).

mod bounds;
mod fs;
mod http;
mod isolation;
mod lifecycle;
mod pipelines;
mod process;
mod stuck;
mod support;
