#![no_main]
//! cargo-fuzz target `odata_page`: see `../harness/odata_page.rs` for what it covers.

#[path = "../harness/odata_page.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
