//! The SYSPRO entities the connector polls: table, key columns and known columns.
//!
//! Column lists come from `../shared/api-notes/syspro.md` (scaffolds of real SYSPRO databases).
//! They are offline help only: the columns a server really has come from its `$metadata`,
//! which `ping` and every read check the mapped columns against.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A SYSPRO entity we poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Entity {
    /// `ArCustomer`: customers.
    ArCustomer,
    /// `ArInvoice`: AR invoices.
    ArInvoice,
    /// `ArInvoicePay`: AR payments.
    ArInvoicePay,
    /// `ApSupplier`: suppliers.
    ApSupplier,
    /// `ApInvoice`: AP (supplier) invoices.
    ApInvoice,
    /// `PorMasterHdr`: purchase order headers (values from `PorMasterDetail`).
    PorMasterHdr,
    /// `GrnDetails`: goods received notes.
    GrnDetails,
    /// `PorMasterDetail`: purchase order lines. Read as a child table of `PorMasterHdr` (its
    /// value and receipt status), never polled on its own.
    PorMasterDetail,
    /// `TblArTerms`: AR terms codes and their due days. Read as a reference table (the
    /// invoices' due dates), never polled on its own.
    TblArTerms,
}

/// Names of the fields the poll derives and adds to each record.
pub mod derived {
    /// `open` / `overdue` / `paid` (invoices), or the PO state.
    pub const STATUS: &str = "_Status";
    /// The due date (`YYYY-MM-DD`), from a column or from terms.
    pub const DUE_DATE: &str = "_DueDate";
    /// `current`, `1-30`, `31-60`, `61-90`, `90+`.
    pub const AGING: &str = "_Aging";
    /// The open balance (sum of balance columns).
    pub const BALANCE: &str = "_Balance";
    /// The key's identity (no trailing blanks).
    pub const KEY: &str = "_Key";
    /// Purchase orders: total value from the detail lines.
    pub const ORDER_VALUE: &str = "_OrderValue";
    /// Purchase orders: `none`, `partial` or `received`, from the lines' received quantities.
    pub const GRN_STATUS: &str = "_GrnStatus";
    /// Purchase orders: the number of detail lines.
    pub const LINE_COUNT: &str = "_LineCount";
    /// Purchase orders: the value received, the sum of the GRNs' `OrigGrnValue`.
    pub const RECEIVED_VALUE: &str = "_ReceivedValue";
    /// Every derived field.
    pub const ALL: &[&str] = &[
        STATUS,
        DUE_DATE,
        AGING,
        BALANCE,
        KEY,
        ORDER_VALUE,
        GRN_STATUS,
        LINE_COUNT,
        RECEIVED_VALUE,
    ];
}

impl Entity {
    /// Every entity, in the order a flow polls them (masters before documents).
    pub const ALL: [Entity; 7] = [
        Entity::ArCustomer,
        Entity::ApSupplier,
        Entity::ArInvoice,
        Entity::ArInvoicePay,
        Entity::ApInvoice,
        Entity::PorMasterHdr,
        Entity::GrnDetails,
    ];

    /// The SQL table / OData entity set name.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::ArCustomer => "ArCustomer",
            Entity::ArInvoice => "ArInvoice",
            Entity::ArInvoicePay => "ArInvoicePay",
            Entity::ApSupplier => "ApSupplier",
            Entity::ApInvoice => "ApInvoice",
            Entity::PorMasterHdr => "PorMasterHdr",
            Entity::GrnDetails => "GrnDetails",
            Entity::PorMasterDetail => "PorMasterDetail",
            Entity::TblArTerms => "TblArTerms",
        }
    }

    /// The key columns, in order.
    pub fn key_fields(self) -> &'static [&'static str] {
        match self {
            Entity::ArCustomer => &["Customer"],
            Entity::ArInvoice => &["Customer", "Invoice", "DocumentType"],
            Entity::ArInvoicePay => &["Customer", "Invoice", "DocumentType", "EntryNumber"],
            Entity::ApSupplier => &["Supplier"],
            Entity::ApInvoice => &["Supplier", "Invoice"],
            Entity::PorMasterHdr => &["PurchaseOrder"],
            Entity::GrnDetails => &["Grn", "GrnSource", "Journal", "JournalEntry"],
            Entity::PorMasterDetail => &["PurchaseOrder", "Line"],
            Entity::TblArTerms => &["TermsCode"],
        }
    }

    /// Columns known to exist (key columns included). `TimeStamp` is the rowversion.
    pub fn known_fields(self) -> &'static [&'static str] {
        match self {
            Entity::ArCustomer => &[
                "Customer",
                "Name",
                "ShortName",
                "Contact",
                "Telephone",
                "Email",
                "SoldToAddr1",
                "SoldToAddr2",
                "SoldToAddr3",
                "SoldToAddr4",
                "SoldToAddr5",
                "SoldPostalCode",
                "ShipToAddr1",
                "ShipToAddr2",
                "ShipToAddr3",
                "ShipToAddr4",
                "ShipToAddr5",
                "Currency",
                "TermsCode",
                "CustomerOnHold",
                "CreditLimit",
                "HighestBalance",
                "OutstOrdVal",
                "DateCustAdded",
                "DateLastSale",
                "DateLastPay",
                "TimeStamp",
            ],
            Entity::ArInvoice => &[
                "Customer",
                "Invoice",
                "DocumentType",
                "InvoiceDate",
                "PodEntryDate",
                "CurrencyValue",
                "InvoiceBal1",
                "InvoiceBal2",
                "InvoiceBal3",
                "TaxPortion",
                "DiscBal",
                "TermsCode",
                "SalesOrder",
                "CustomerPoNumber",
                "PostCurrency",
                "TimeStamp",
            ],
            Entity::ArInvoicePay => &[
                "Customer",
                "Invoice",
                "DocumentType",
                "EntryNumber",
                "JournalDate",
                "TrnValue",
                "DiscValue",
                "PostValue",
                "TrnType",
                "Journal",
                "Reference",
                "PaymentNumber",
                "PostCurrency",
                "TimeStamp",
            ],
            Entity::ApSupplier => &[
                "Supplier",
                "SupplierName",
                "CurrentBalance",
                "Currency",
                "TermsCode",
                "Email",
                "OnHold",
                "TimeStamp",
            ],
            Entity::ApInvoice => &[
                "Supplier",
                "Invoice",
                "InvoiceDate",
                "DueDate",
                "OrigInvValue",
                "MthInvBal1",
                "MthInvBal2",
                "MthInvBal3",
                "TimeStamp",
            ],
            Entity::PorMasterHdr => &[
                "PurchaseOrder",
                "Supplier",
                "OrderEntryDate",
                "OrderDueDate",
                "DatePoCompleted",
                "OrderStatus",
                "TimeStamp",
            ],
            Entity::GrnDetails => &[
                "Grn",
                "GrnSource",
                "Journal",
                "JournalEntry",
                "PurchaseOrder",
                "PurchaseOrderLin",
                "Supplier",
                "OrigReceiptDate",
                "OrigGrnValue",
                "QtyReceived",
                "TimeStamp",
            ],
            Entity::PorMasterDetail => &[
                "PurchaseOrder",
                "Line",
                "StockCode",
                "MOrderQty",
                "MReceivedQty",
                "MPrice",
                "MLatestDueDate",
                "TimeStamp",
            ],
            Entity::TblArTerms => &["TermsCode", "Description", "DueDays", "TimeStamp"],
        }
    }

    /// True when `field` is a known column of this entity or a derived field.
    pub fn has_field(self, field: &str) -> bool {
        self.known_fields().contains(&field) || derived::ALL.contains(&field)
    }

    /// True for documents with a balance (status and aging are derived for them).
    pub fn is_invoice(self) -> bool {
        matches!(self, Entity::ArInvoice | Entity::ApInvoice)
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown entity name.
#[derive(Debug, thiserror::Error)]
#[error("unknown SYSPRO entity {0:?} (expected one of ArCustomer, ArInvoice, ArInvoicePay, ApSupplier, ApInvoice, PorMasterHdr, GrnDetails)")]
pub struct UnknownEntity(pub String);

impl FromStr for Entity {
    type Err = UnknownEntity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Entity::ALL
            .iter()
            .chain(&[Entity::PorMasterDetail, Entity::TblArTerms])
            .copied()
            .find(|e| e.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownEntity(s.to_string()))
    }
}
