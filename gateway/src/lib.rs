//! Mutua's gateway: the gRPC services, the one engine thread that sequences every command, the
//! RocksDB journal that makes each command durable before it is acknowledged, and the `mutua`
//! command line.
//!
//! Data flows one way: handler → bounded queue → engine thread → journal → reply and streams.

pub mod audit;
pub mod auth;
pub mod chain;
pub mod journal;
pub mod limits;
pub mod metrics;
pub mod record;
mod replica;
pub mod replication;
pub mod sequencer;
pub mod server;

pub mod cli;
pub mod clock;
pub mod codec;
pub mod convert;
pub mod export;
pub mod history;
pub mod services;

/// The generated protobuf types, clients and servers of `proto/mutua/v1`. Only `convert` and
/// `services` (and the client side: `cli`, with the load generator) use them; the engine never sees them.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("mutua.v1");
}

/// The encoded descriptor set of `proto/mutua/v1`, with comments, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/mutua_descriptor.bin"));
