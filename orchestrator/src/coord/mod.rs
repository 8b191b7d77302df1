//! Coordination: Redis for distributed mode, memory for embedded mode.
