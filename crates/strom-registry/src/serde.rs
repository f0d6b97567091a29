//! Serdes (placeholder until written).
