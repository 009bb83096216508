//! Mutua's gateway: the gRPC services, the one engine thread that sequences every command, the
//! RocksDB journal that makes each command durable before it is acknowledged, and the `mutua`
//! command line.
//!
//! Data flows one way: handler → bounded queue → engine thread → journal → reply and streams.

pub mod auth;
pub mod journal;
pub mod sequencer;
pub mod server;
