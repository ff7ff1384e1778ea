//! The fuzz targets' corpora replayed as plain tests, so every run of the suite proves the
//! parsers never panic on the committed seeds and on every input a fuzzer ever crashed them
//! with (`fuzz/corpus/<target>/`, see `fuzz/README.md`). The harnesses are the fuzz targets'
//! own (`fuzz/harness/`).

#[path = "../../../fuzz/harness/config_toml.rs"]
mod config_toml;

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
fn config_toml_corpus_never_panics() {
    replay("config_toml", config_toml::run);
}
