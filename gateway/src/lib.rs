//! Mutua gateway
