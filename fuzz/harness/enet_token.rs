//! Harness of the `enet_token` fuzz target, shared with mlc-syspro's corpus replay test.
//! An e.net `Logon` answer → token (`parse_token`), and any HTTP-200 e.net answer →
//! session-invalid / error / body (`classify_enet`), from the decoded bytes and from the
//! bytes read as UTF-8.

/// Runs one input. Panics only on a bug.
pub fn run(data: &[u8]) {
    let decoded = mlc_syspro::comfnd::decode_body(data);
    let lossy = String::from_utf8_lossy(data).into_owned();
    for text in [decoded, lossy] {
        if let Ok(token) = mlc_syspro::parse_token(&text) {
            assert!(!token.is_empty() && token.len() <= 200);
            assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        }
        let _ = mlc_syspro::fuzzing::classify_enet(text);
    }
}
