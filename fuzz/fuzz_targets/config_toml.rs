#![no_main]
//! cargo-fuzz target `config_toml`: see `../harness/config_toml.rs` for what it covers.

#[path = "../harness/config_toml.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
