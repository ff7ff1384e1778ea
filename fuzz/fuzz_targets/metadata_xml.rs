#![no_main]
//! cargo-fuzz target `metadata_xml`: see `../harness/metadata_xml.rs` for what it covers.

#[path = "../harness/metadata_xml.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
