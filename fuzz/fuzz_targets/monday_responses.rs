#![no_main]
//! cargo-fuzz target `monday_responses`: see `../harness/monday_responses.rs` for what it covers.

#[path = "../harness/monday_responses.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
