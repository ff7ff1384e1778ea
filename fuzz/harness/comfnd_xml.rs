//! Harness of the `comfnd_xml` fuzz target, shared with mlc-syspro's corpus replay test.
//! Raw e.net bytes (Windows-1252 or whatever the XML declaration names) → decoded text →
//! business-error detection → COMFND rows, as `comfnd` reads a `Query/Query` answer.

/// Runs one input. Panics only on a bug.
pub fn run(data: &[u8]) {
    let text = mlc_syspro::comfnd::decode_body(data);
    let _ = mlc_syspro::comfnd::business_error(&text);
    let columns: Vec<String> = [
        "Customer",
        "Invoice",
        "InvoiceDate",
        "InvoiceBal1",
        "TimeStamp",
        "Name",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Ok(rows) = mlc_syspro::comfnd::parse_rows(&text, &columns) {
        for row in rows {
            // Rows carry the asked-for spelling of every column they match.
            for k in row.keys() {
                if let Some(c) = columns.iter().find(|c| c.eq_ignore_ascii_case(k)) {
                    assert_eq!(c, k);
                }
            }
        }
    }
    let _ = mlc_syspro::comfnd::parse_rows(&text, &[]);
}
