//! The suite against the embedded mode's coordinator, with paused time.

use rivet_orchestrator::coord::MemoryCoordinator;

use crate::suite::Clock;

crate::suite_tests!(
    #[tokio::test(start_paused = true)]
    MemoryCoordinator::new(),
    Clock::Paused
);
