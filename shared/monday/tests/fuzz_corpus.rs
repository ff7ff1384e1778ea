//! The fuzz targets' corpora replayed as plain tests, so every run of the suite proves the
//! parsers never panic on the committed seeds and on every input a fuzzer ever crashed them
//! with (`fuzz/corpus/<target>/`, see `fuzz/README.md`). The harnesses are the fuzz targets'
//! own (`fuzz/harness/`).

#[path = "../../../fuzz/harness/monday_responses.rs"]
mod monday_responses;

use std::path::PathBuf;

/// Runs `run` over the committed files of `fuzz/corpus/<target>/` (`seed-*` and `crash-*`;
/// the entries a local fuzz run adds are not committed and not replayed); there must be some.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../fuzz/corpus/{target}"));
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !(name.starts_with("seed-") || name.starts_with("crash-")) {
            continue;
        }
        let data = std::fs::read(&path).expect("corpus file");
        run(&data);
        n += 1;
    }
    assert!(n > 0, "{} is empty", dir.display());
}

#[test]
fn monday_responses_corpus_never_panics() {
    replay("monday_responses", monday_responses::run);
}

/// Found by fuzz target monday_responses: `retry_in_seconds` of 1e300 (read as `u64::MAX`
/// seconds) overflowed `with_jitter`'s `Duration` addition.
#[test]
fn huge_retry_in_seconds_saturates() {
    let input: &[u8] = b"\x01\xad\n{\"errors\":[{\"message\":\"x\",\"extensions\":{\"code\":\"RATE_LIMIT_EXCEEDED\",\"retry_in_seconds\":1e300}}]}";
    monday_responses::run(input);
    let body: serde_json::Value = serde_json::from_slice(&input[3..]).expect("json");
    let errors = mlc_monday::retry::parse_errors(&body);
    let d = mlc_monday::retry::server_delay(errors.first(), &Default::default()).expect("a delay");
    assert_eq!(d, std::time::Duration::from_secs(u64::MAX));
    assert!(mlc_monday::retry::with_jitter(d) >= d);
}

/// Found by fuzz target monday_responses: a `Retry-After` of `u64::MAX` seconds, same overflow.
#[test]
fn huge_retry_after_header_saturates() {
    monday_responses::run(b"\x01\xad18446744073709551615\n{}");
}

/// Found by fuzz target monday_responses: `complexity.reset_in_x_seconds` of 1e17 panicked in
/// `chrono::Duration::seconds` when the limiter recorded it; now the reset is "never" and the
/// budget reported is kept.
#[test]
fn huge_complexity_reset_is_recorded_without_panic() {
    monday_responses::run(
        b"\x00\xc8\n{\"data\":{\"complexity\":{\"after\":1,\"reset_in_x_seconds\":100000000000000000}}}",
    );
}
