//! Rivet's public API, package `rivet.v1`, generated from `proto/rivet/v1/*.proto`.
//!
//! This crate is the only one that knows the wire format's generated types; conversions to
//! and from the domain types of `rivet-core` live at each service's edge.

#[cfg(test)]
mod boundary;
pub mod convert;
pub mod endpoint;

/// Version 1 of the API.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("rivet.v1");
}

/// The encoded `FileDescriptorSet` of every Rivet proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("rivet_descriptor");
