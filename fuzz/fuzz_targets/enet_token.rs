#![no_main]
//! cargo-fuzz target `enet_token`: see `../harness/enet_token.rs` for what it covers.

#[path = "../harness/enet_token.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
