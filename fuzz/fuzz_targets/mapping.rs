#![no_main]
//! cargo-fuzz target `mapping`: see `../harness/mapping.rs` for what it covers.

#[path = "../harness/mapping.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
