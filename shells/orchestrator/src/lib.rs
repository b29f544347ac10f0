//! Local orchestrator (being written).
