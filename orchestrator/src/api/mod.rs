//! The gRPC edge: tonic handlers that decode requests, call the domain, encode responses
//! and map errors. No SQL here.

pub mod auth;
pub mod guard;
pub mod jobs;
pub mod logs;
pub mod pipelines;
pub mod plugins;
pub mod roles;
pub mod runners;
pub mod schedules;
pub mod secrets;
mod status;
pub mod tokens;
pub mod triggers;

use tonic::Status;

/// The page size when a request gives none.
const DEFAULT_PAGE_SIZE: u64 = 50;
/// The largest page a request may ask for.
const MAX_PAGE_SIZE: u64 = 500;

/// A request's page size, defaulted and bounded.
fn page_size(requested: u32) -> Result<u64, Status> {
    match u64::from(requested) {
        0 => Ok(DEFAULT_PAGE_SIZE),
        size if size > MAX_PAGE_SIZE => {
            Err(Status::invalid_argument(format!("page_size: must be at most {MAX_PAGE_SIZE}, got {size}")))
        }
        size => Ok(size),
    }
}
