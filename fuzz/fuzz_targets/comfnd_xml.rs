#![no_main]
//! cargo-fuzz target `comfnd_xml`: see `../harness/comfnd_xml.rs` for what it covers.

#[path = "../harness/comfnd_xml.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
