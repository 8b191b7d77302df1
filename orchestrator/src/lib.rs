//! The orchestrator: gRPC services, storage, dispatch, leases and log fan-out.
