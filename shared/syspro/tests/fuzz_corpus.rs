//! The fuzz targets' corpora replayed as plain tests, so every run of the suite proves the
//! parsers never panic on the committed seeds and on every input a fuzzer ever crashed them
//! with (`fuzz/corpus/<target>/`, see `fuzz/README.md`), plus each crash as an inline
//! regression test. The harnesses are the fuzz targets' own (`fuzz/harness/`).

#[path = "../../../fuzz/harness/comfnd_xml.rs"]
mod comfnd_xml;
#[path = "../../../fuzz/harness/enet_token.rs"]
mod enet_token;
#[path = "../../../fuzz/harness/metadata_xml.rs"]
mod metadata_xml;
#[path = "../../../fuzz/harness/odata_page.rs"]
mod odata_page;

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
fn odata_page_corpus_never_panics() {
    replay("odata_page", odata_page::run);
}

#[test]
fn comfnd_xml_corpus_never_panics() {
    replay("comfnd_xml", comfnd_xml::run);
}

#[test]
fn enet_token_corpus_never_panics() {
    replay("enet_token", enet_token::run);
}

#[test]
fn metadata_xml_corpus_never_panics() {
    replay("metadata_xml", metadata_xml::run);
}

/// Found by fuzz target enet_token: a logon answer whose fifth byte falls inside a
/// multi-byte character (`[..5]` on a `str` panicked in `parse_token`).
#[test]
fn logon_answer_with_a_character_across_byte_five_is_refused() {
    let crash: &[u8] = b"0\xff\xff0A4A7E22  \0\0\0\0\0\0\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\0\0\0\0";
    enet_token::run(crash);
    let text = String::from_utf8_lossy(crash);
    assert!(mlc_syspro::parse_token(&text).is_err());
    assert!(mlc_syspro::parse_token("0\u{FFFD}\u{FFFD}0A4A7E22").is_err());
}

/// Found by fuzz target enet_token: `ERRO` followed by a three-byte character, whose bytes
/// straddle both the five-byte `ERROR` test of `parse_token` and the six-byte `ERROR:` test of
/// the e.net answer classifier.
#[test]
fn answer_starting_like_error_with_a_split_character_is_not_a_panic() {
    let text = "ERRO\u{20AC} and more";
    assert!(mlc_syspro::parse_token(text).is_err());
    assert_eq!(
        mlc_syspro::fuzzing::classify_enet(text.to_string()).ok(),
        Some(Some(text.to_string()))
    );
    enet_token::run(text.as_bytes());
}
