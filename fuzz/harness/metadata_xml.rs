//! Harness of the `metadata_xml` fuzz target, shared with mlc-syspro's corpus replay test.
//! `$metadata` CSDL XML → entity sets, keys and property kinds.

/// Runs one input. Panics only on a bug.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(meta) = mlc_syspro::metadata::Metadata::parse(&text) {
        for set in meta.sets.values() {
            let _ = set.has_row_version();
        }
    }
}
