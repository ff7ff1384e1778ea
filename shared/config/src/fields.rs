//! Which source fields a mapping may name: a SYSPRO column, a derived `_…` field, or one level
//! of dotted lookup into a master record.
//!
//! Columns are not checked against a list: a customer's SYSPRO has columns no built-in list
//! knows, and only its `$metadata` is the truth (checked by `ping` and at the start of every
//! read). Offline, a name is refused only when it cannot be a SQL column name at all. Derived
//! fields are ours, so they must be exactly the known ones.
//!
//! Dotted lookups (`Customer.Name`) are allowed only where a document names its master by key:
//! `ArInvoice` and `ArInvoicePay` → `Customer.<ArCustomer column>`, `ApInvoice` →
//! `Supplier.<ApSupplier column>`. Nothing else, and only one level.

use mlc_core::entity::derived;
use mlc_core::Entity;

/// The date-only columns of an entity (the candidates for `date-window`).
pub fn date_columns(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::ArCustomer => &["DateCustAdded", "DateLastSale", "DateLastPay"],
        Entity::ArInvoice => &["InvoiceDate", "PodEntryDate"],
        Entity::ArInvoicePay => &["JournalDate"],
        Entity::ApSupplier => &[],
        Entity::ApInvoice => &["InvoiceDate", "DueDate"],
        Entity::PorMasterHdr => &["OrderEntryDate", "OrderDueDate", "DatePoCompleted"],
        Entity::GrnDetails => &["OrigReceiptDate"],
        Entity::PorMasterDetail => &["MLatestDueDate"],
        Entity::TblArTerms => &[],
    }
}

/// The master entity a dotted prefix reaches from `entity`, if any.
pub fn master(entity: Entity, prefix: &str) -> Option<Entity> {
    match (entity, prefix) {
        (Entity::ArInvoice | Entity::ArInvoicePay, "Customer") => Some(Entity::ArCustomer),
        (Entity::ApInvoice, "Supplier") => Some(Entity::ApSupplier),
        _ => None,
    }
}

/// True when `name` can be a SYSPRO (SQL Server) column: ASCII letters, digits and `_`,
/// starting with a letter. Anything else could never come back from the server.
pub fn is_column_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn column_name_rule(name: &str) -> String {
    format!("{name:?} cannot be a SYSPRO column name (ASCII letters, digits and '_', starting with a letter)")
}

/// Checks that `field` can be read from a record of `entity`; the error is the message.
pub fn check_source_field(entity: Entity, field: &str, what: &str) -> Result<(), String> {
    if field.starts_with('_') {
        return check_derived(field, what);
    }
    match field.split_once('.') {
        Some((prefix, column)) => check_lookup(entity, field, prefix, column, what),
        None if is_column_name(field) => Ok(()),
        None => Err(format!("{what} {}", column_name_rule(field))),
    }
}

fn check_derived(field: &str, what: &str) -> Result<(), String> {
    if derived::ALL.contains(&field) {
        Ok(())
    } else {
        Err(format!(
            "{what} {field:?} is not a derived field (derived fields: {})",
            derived::ALL.join(", ")
        ))
    }
}

fn check_lookup(
    entity: Entity,
    field: &str,
    prefix: &str,
    column: &str,
    what: &str,
) -> Result<(), String> {
    let not_in = format!("{what} {field:?} is not in {entity}");
    match master(entity, prefix) {
        Some(_) if is_column_name(column) => Ok(()),
        Some(m) => Err(format!("{not_in} (as a column of {m}, {})", column_name_rule(column))),
        None => Err(format!(
            "{not_in} (dotted lookups: Customer.<column> on ArInvoice and ArInvoicePay, Supplier.<column> on ApInvoice)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_lookups_only_into_masters() {
        let ok = |e, f| check_source_field(e, f, "source field").is_ok();
        assert!(ok(Entity::ArInvoice, "Customer.Name"));
        assert!(ok(Entity::ArInvoicePay, "Customer.Email"));
        assert!(ok(Entity::ApInvoice, "Supplier.SupplierName"));
        // Not in the built-in list, but it may be a column of this site's ArCustomer.
        assert!(ok(Entity::ArInvoice, "Customer.UserField1"));
        assert!(!ok(Entity::ArInvoice, "Customer.Na me"));
        assert!(!ok(Entity::ArInvoice, "Customer._Status"));
        assert!(!ok(Entity::ArInvoice, "Customer.Name.X"));
        assert!(!ok(Entity::ArCustomer, "Customer.Name"));
        assert!(!ok(Entity::PorMasterHdr, "Supplier.SupplierName"));
    }

    #[test]
    fn columns_are_plausible_names_and_derived_fields_are_ours() {
        let ok = |f| check_source_field(Entity::ApSupplier, f, "source field").is_ok();
        assert!(ok("OnHold"));
        assert!(ok("UserField_2"));
        assert!(ok("_DueDate"));
        assert!(!ok("_OnHold"));
        assert!(!ok("2ndAddress"));
        for bad in ["", "On Hold", "On'Hold", "On\"Hold", "OnHold;", "Ünit"] {
            assert!(!ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn date_columns_are_known_columns() {
        for e in Entity::ALL {
            for c in date_columns(e) {
                assert!(e.known_fields().contains(c), "{e}.{c}");
            }
        }
    }
}
