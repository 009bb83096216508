//! Compiles the wire contract in `proto/mutua/v1` with the pure-Rust `protox` (no `protoc` on
//! these machines) and generates tonic clients and servers from its descriptor set. The same
//! descriptor set, with comments, is written to OUT_DIR for server reflection.

use std::path::PathBuf;

const PROTO_ROOT: &str = "../proto";
const PROTO_FILES: &[&str] = &[
    "mutua/v1/common.proto",
    "mutua/v1/exchange.proto",
    "mutua/v1/accounts.proto",
    "mutua/v1/registry.proto",
    "mutua/v1/market_data.proto",
    "mutua/v1/identity.proto",
    "mutua/v1/membership.proto",
    "mutua/v1/withdrawals.proto",
    "mutua/v1/vouchers.proto",
    "mutua/v1/time_credits.proto",
    "mutua/v1/pool.proto",
    "mutua/v1/audit.proto",
    "mutua/v1/history.proto",
    "mutua/v1/diagnostics.proto",
    // Served by reflection only, so clients can decode the ErrorInfo status detail; the gateway
    // encodes it with its own prost type (convert.rs).
    "google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    std::fs::write(
        out_dir.join("mutua_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // The codec maps undecodable requests to INVALID_ARGUMENT (see src/codec.rs).
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::MutuaCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
