//! Harness of the `config_toml` fuzz target, shared with mlc-config's corpus replay test.
//! Flows file text → `mlc_config::parse` (syntax, shape and meaning passes). Every problem it
//! reports names a line inside the text.

/// Runs one input. Panics only on a bug.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = mlc_config::parse("fuzz.toml", text) {
        let lines = text.lines().count().max(1);
        for p in &e.problems {
            assert!(p.line <= lines + 1, "line {} of {lines}: {p:?}", p.line);
        }
        let _ = e.to_string();
    }
}
