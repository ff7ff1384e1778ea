#![no_main]
//! cargo-fuzz target `salesforce_responses`: see `../harness/salesforce_responses.rs` for what it covers.

#[path = "../harness/salesforce_responses.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
