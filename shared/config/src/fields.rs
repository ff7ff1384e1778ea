//! Which source fields an entity offers: its known columns, the derived `_…` fields, and one
//! level of dotted lookup into a master record.
//!
//! Dotted lookups (`Customer.Name`) are allowed only where a document names its master by key:
//! `ArInvoice` and `ArInvoicePay` → `Customer.<ArCustomer column>`, `ApInvoice` →
//! `Supplier.<ApSupplier column>`. Nothing else, and only one level.

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

/// Checks that `field` can be read from a record of `entity`; the error is the message.
pub fn check_source_field(entity: Entity, field: &str, what: &str) -> Result<(), String> {
    if entity.has_field(field) {
        return Ok(());
    }
    let not_in = format!("{what} {field:?} is not in {entity}");
    match field.split_once('.') {
        Some((prefix, rest)) => match master(entity, prefix) {
            Some(m) if m.known_fields().contains(&rest) => Ok(()),
            Some(m) => Err(format!("{not_in} ({rest:?} is not a column of {m})")),
            None => Err(format!(
                "{not_in} (dotted lookups: Customer.<column> on ArInvoice and ArInvoicePay, Supplier.<column> on ApInvoice)"
            )),
        },
        None => Err(not_in),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_lookups_only_into_masters() {
        assert!(check_source_field(Entity::ArInvoice, "Customer.Name", "source field").is_ok());
        assert!(check_source_field(Entity::ArInvoicePay, "Customer.Email", "source field").is_ok());
        assert!(
            check_source_field(Entity::ApInvoice, "Supplier.SupplierName", "source field").is_ok()
        );
        assert!(check_source_field(Entity::ArInvoice, "Customer.Nme", "source field").is_err());
        assert!(check_source_field(Entity::ArCustomer, "Customer.Name", "source field").is_err());
        assert!(check_source_field(
            Entity::PorMasterHdr,
            "Supplier.SupplierName",
            "source field"
        )
        .is_err());
        assert!(check_source_field(Entity::ArInvoice, "_DueDate", "source field").is_ok());
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
