//! Harness of the `odata_page` fuzz target, shared with mlc-syspro's corpus replay test.
//! An OData JSON page → normalised rows, as `read_odata` reads it: once with the kinds of a
//! `$metadata` entity set (dates, decimals as strings, `TimeStamp` binary, booleans), once
//! without (only `TimeStamp` is special). Also feeds each string value to the value helpers.

use mlc_syspro::metadata::{EntitySetMeta, PropKind};
use mlc_syspro::value;

/// Runs one input. Panics only on a bug.
pub fn run(data: &[u8]) {
    let mut set = EntitySetMeta::default();
    for (name, kind) in [
        ("Customer", PropKind::Text),
        ("Invoice", PropKind::Text),
        ("InvoiceDate", PropKind::Date),
        ("InvoiceBal1", PropKind::Number),
        ("TimeStamp", PropKind::Binary),
        ("OnHold", PropKind::Bool),
    ] {
        set.props.insert(name.to_string(), kind);
    }
    let with = mlc_syspro::fuzzing::odata_page(data, Some(&set));
    let without = mlc_syspro::fuzzing::odata_page(data, None);
    // Whether the body is a page does not depend on the metadata.
    assert_eq!(with.is_ok(), without.is_ok());
    if let Ok((rows, _next)) = with {
        for row in &rows {
            assert!(row.keys().all(|k| !k.starts_with('@')), "annotation kept");
            for v in row.values() {
                if let Some(s) = v.as_str() {
                    let _ = value::row_version_b64(s);
                    let _ = value::row_version_text(s);
                    let _ = value::date(s);
                    let _ = value::enet_value("InvoiceBal1", s);
                    let _ = value::enet_value("TimeStamp", s);
                    let _ = value::enet_value("InvoiceDate", s);
                    let _ = value::enet_value("Unknown", s);
                }
                if v.is_number() {
                    let _ = value::num_text(&v.to_string());
                }
            }
        }
    }
}
