//! The "done when" of issue 19 (right data, to the cent), through the real binary.
//!
//! A small company is built by hand in the SYSPRO simulator: customers with padded keys and
//! names with apostrophes, ampersands and non-ASCII letters; invoices, credit and debit notes
//! (paid before go-live, part-paid, overdue, due exactly on the test date); `TblArTerms` rows
//! (one code's `DueDays` changed mid-test); purchase orders with several lines, fractional
//! quantities, five-decimal prices and GRNs; suppliers with a blank e-mail, on hold and with a
//! blank on-hold flag; AP invoices; and an AR invoice posted before its customer exists.
//!
//! It is synced with `ml-connector sync --once` to the Salesforce and Monday.com simulators by
//! a flows file shaped like `infra/flows.example.toml`. What every destination field must be
//! is computed here, independently of the connector's code (money as decimals, half-up to the
//! cent), and compared field by field with what the simulators hold. Then: an idle sync writes
//! nothing; the business date, a terms change and a goods receipt re-send exactly the records
//! they move; a mapping change re-sends exactly the entity it touched.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;

use chrono::{Days, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{json, Map, Value};
use sim_monday::{MondayHandle, MondayOptions, MondaySim};
use sim_salesforce::{FieldDef, OrgHandle, OrgOptions, OrgSim};
use sim_syspro::{SimHandle, SimOptions, SysproSim};

const BIN: &str = env!("CARGO_BIN_EXE_ml-connector");

/// The first business date of the test: invoice 100034 and AP invoice X-1 fall due on it.
const T1: &str = "2026-11-24";
/// The day after: both fall overdue.
const T2: &str = "2026-11-25";
/// Go-live: `initial_scope = "since"` leaves out invoices paid before it.
const SINCE: &str = "2026-01-01";

const COMPANY: &str = "ACME";
const OPERATOR: &str = "MLCONNECT";
const PASSWORD: &str = "company-odata-password";
const SF_ID: &str = "company-client-id";
const SF_SECRET: &str = "company-client-secret";
const MONDAY_TOKEN: &str = "company-monday-token";

const SUPPLIER_BOARD: &str = "7001";
const AP_BOARD: &str = "7002";
const PO_BOARD: &str = "7003";
const AR_BOARD: &str = "7004";

/// The customer whose invoice is posted before the customer itself.
const LATE_CUSTOMER: &str = "LATE01";
/// That invoice's key.
const LATE_INVOICE: &str = "LATE01|100040|I";

/// `terms_days` of the flows file: overrides `TblArTerms` (a code no invoice uses).
const TERMS_OVERRIDE: (&str, u32) = ("03", 7);
/// Days until due for a terms code neither `TblArTerms` nor the file lists.
const DEFAULT_DUE_DAYS: u32 = 30;

/// The Salesforce stages of each status.
const STAGES: [(&str, &str); 4] = [
    ("open", "Proposal/Price Quote"),
    ("overdue", "Negotiation/Review"),
    ("paid", "Closed Won"),
    ("removed", "Closed Lost"),
];

// ------------------------------------------------------------------------------------------
// The company
// ------------------------------------------------------------------------------------------

/// A SYSPRO char key: blank-padded to 15, as SQL Server returns `char(15)`.
fn padded(code: &str) -> String {
    format!("{code:<15}")
}

/// Inserts one row given as a JSON object.
fn put(sim: &SimHandle, table: &str, row: Value) {
    let map = row.as_object().cloned().expect("a JSON object");
    sim.insert(table, &map)
        .unwrap_or_else(|e| panic!("insert into {table}: {e}: {row}"));
}

/// Inserts a customer: defaults (ZAR, terms 30, not on hold) overridden by `more`.
fn customer(sim: &SimHandle, code: &str, name: &str, more: Value) {
    let mut row = json!({
        "Customer": code, "Name": name, "ShortName": name.chars().take(20).collect::<String>(),
        "Currency": "ZAR", "TermsCode": "30", "CustomerOnHold": "N",
    });
    if let (Some(r), Some(m)) = (row.as_object_mut(), more.as_object()) {
        r.extend(m.clone());
    }
    put(sim, "ArCustomer", row);
}

/// Splits a `|`-separated table: one row a line; blank lines and `#` comments skipped. Cells
/// are kept as written: their blanks are data (SYSPRO pads char columns).
fn table(t: &str) -> Vec<Vec<&str>> {
    t.lines()
        .map(str::trim_start)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split('|').collect())
        .collect()
}

/// Inserts every row of a [`table`] whose cells are `columns`, in order. Numbers are given as
/// text: the simulator stores them as SYSPRO's decimal columns.
fn put_table(sim: &SimHandle, name: &str, columns: &[&str], rows: &str) {
    for cells in table(rows) {
        assert_eq!(cells.len(), columns.len(), "{name}: {cells:?}");
        let row: Map<String, Value> = columns
            .iter()
            .zip(&cells)
            .map(|(c, v)| ((*c).to_string(), Value::from(*v)))
            .collect();
        put(sim, name, Value::Object(row));
    }
}

/// AR documents. Customer codes `ACME01` and `LATE01` are padded to 15 as `char(15)` keys
/// come back; `CAFE07` is padded in ArCustomer only (SQL compares them equal).
const AR_DOCUMENTS: &str = "
    # Paid before go-live, dated before it: left out by initial_scope = \"since\".
    ACME01         |100030|I |2025-11-10|1500.00|0|30|PO-A1
    ACME01         |100041|I |2025-10-01|50.00|0|30|
    # A credit note: a credit balance, past its due date, never overdue.
    ACME01         |100031|C |2026-10-01|-250.00|-250.00|30|
    ACME01         |100032|I |2026-11-01|11500.00|11500.00|30|PO 4471/B
    # A debit note, 40 days overdue on T1.
    ACME01         |100033|D |2026-09-15|320.40|320.40|30|
    # Part-paid below (5,000.00 of 8,000.00); due exactly on T1.
    MULLER|100034|I |2026-10-25|8000.00|8000.00|30|MÜ-778
    MULLER|100035|I |2026-06-01|999.99|999.99|60|
    # Paid in full after go-live below.
    MULLER|100036|I |2026-03-02|4321.10|4321.10|60|
    # A credit note partly applied.
    MULLER|100042|C |2026-11-05|-75.25|-20.25|CO|
    CAFE07|100037|I |2026-08-20|2750.00|2750.00|EM|
    # Dated before go-live, but open: in scope.
    CAFE07|100038|I |2025-12-15|600.00|600.00|07|
    # A padded invoice number; a terms code TblArTerms has no row for (default days).
    CAFE07|100039      |I |2026-11-20|100.00|100.00|ZZ|
    # Its customer is not in SYSPRO yet.
    LATE01         |100040|I |2026-11-10|1234.56|1234.56|30|LL-1
";

/// AP invoices: supplier, invoice, date, due date, value, balance.
const AP_INVOICES: &str = "
    SUP001         |INV-9001|2026-10-01|2026-10-31|5000.00|5000.00
    SUP001         |INV-9002|2026-11-20|2026-12-20|750.25|750.25
    SUP002         |A/77|2026-09-01|2026-10-01|99.99|0
    # Due exactly on T1.
    SUP003|X-1|2026-10-25|2026-11-24|432.10|432.10
";

/// Purchase orders: number, supplier, entered, due, status.
const PURCHASE_ORDERS: &str = "
    000000000200001|SUP001         |2026-11-02|2026-11-30|1
    000000000200002|SUP002         |2026-10-01|2026-10-20|9
    000000000200003|SUP003|2026-11-15|2026-12-15|0
    # Cancelled, no lines.
    000000000200004|SUP001         |2026-11-16|2026-12-16|*
";

/// Purchase-order lines: order, line, stock code, quantity, received, price (5 decimals).
const PO_LINES: &str = "
    # 2.5 × 1.01 = 2.525 → 2.53 (binary floating point makes it 2.52);
    # 0.333333 × 45.12345 = 15.0411… → 15.04; 12 × 0.12345 = 1.4814 → 1.48;
    # 3.5 × 10.005 = 35.0175 → 35.02. Order value 54.07; partly received.
    000000000200001|1|BK-001|2.5|2.5|1.01000
    000000000200001|2|BK-002|0.333333|0.333333|45.12345
    000000000200001|3|BK-003|12|6|0.12345
    000000000200001|4|BK-004|3.5|0|10.00500
    # 10 × 99.99999 = 999.9999 → 1000.00; 1.5 × 1.23 = 1.845 → 1.85: 1001.85, all received.
    000000000200002|1|BK-011|10|10|99.99999
    000000000200002|2|BK-012|1.5|1.5|1.23000
    # 7 × 3.33333 = 23.33331 → 23.33, nothing received.
    000000000200003|1|BK-021|7|0|3.33333
";

/// Goods received: GRN, journal, order, order line, supplier, date, value, quantity.
const GRNS: &str = "
    # 2.53 + 15.04 + 0.74 = 18.31 received on 200001.
    00000000000000000001|101|000000000200001|1|SUP001         |2026-11-10|2.53|2.5
    00000000000000000002|102|000000000200001|2|SUP001         |2026-11-10|15.04|0.333333
    00000000000000000003|103|000000000200001|3|SUP001         |2026-11-12|0.74|6
    00000000000000000004|104|000000000200002|1|SUP002         |2026-10-18|1000.00|10
    00000000000000000005|105|000000000200002|2|SUP002         |2026-10-18|1.85|1.5
";

/// The columns of a [`GRNS`] row.
const GRN_COLUMNS: [&str; 8] = [
    "Grn",
    "Journal",
    "PurchaseOrder",
    "PurchaseOrderLin",
    "Supplier",
    "OrigReceiptDate",
    "OrigGrnValue",
    "QtyReceived",
];

/// Posts a payment on an invoice (its balance goes down, an `ArInvoicePay` row is added).
fn pay(sim: &SimHandle, cust: &str, inv: &str, amount: f64, date: &str) {
    let d = day(date);
    sim.with_company(|c| c.post_payment_on(cust, inv, "I ", amount, d))
        .unwrap_or_else(|e| panic!("payment on {cust}|{inv}: {e}"));
}

/// Builds the company, except [`LATE_CUSTOMER`] (inserted mid-test by [`late_customer`]).
fn build_company(sim: &SimHandle) {
    put_table(
        sim,
        "TblArTerms",
        &["TermsCode", "Description", "DueDays"],
        "CO|Cash on delivery|0\n07|7 days|7\n30|30 days|30\n60|60 days|60\nEM|End of month|31",
    );
    customer(
        sim,
        &padded("ACME01"),
        "O'Brien & Sons (Pty) Ltd",
        json!({
            "Telephone": "+27 11 555 0101  ", "Email": "accounts@obrien.example ",
            "SoldToAddr1": "12 Main Rd", "SoldToAddr2": "", "SoldToAddr3": "Sandton",
            "SoldToAddr4": "Johannesburg", "SoldToAddr5": "Gauteng", "SoldPostalCode": "2196",
            "CreditLimit": 50000.0,
        }),
    );
    // Unpadded key, padded name, blank e-mail, on hold.
    customer(
        sim,
        "MULLER",
        "Müller Fahrräder GmbH   ",
        json!({
            "Email": "   ", "SoldToAddr1": "Hauptstraße 5", "SoldToAddr2": "Hinterhof",
            "SoldToAddr4": "München", "SoldToAddr5": "Bayern", "SoldPostalCode": "80331",
            "Currency": "EUR", "TermsCode": "60", "CustomerOnHold": "Y", "CreditLimit": 12500.5,
        }),
    );
    customer(
        sim,
        &padded("CAFE07"),
        "Café São Paulo & Filhos Ltda",
        json!({
            "Telephone": "+55 11 3333 4444", "Email": "financeiro@cafesp.example",
            "SoldToAddr1": "Rua Augusta, 1500", "SoldToAddr4": "São Paulo",
            "SoldPostalCode": "01304-001", "Currency": "USD", "TermsCode": "EM",
            "CustomerOnHold": "",
        }),
    );
    put_table(
        sim,
        "ArInvoice",
        &[
            "Customer",
            "Invoice",
            "DocumentType",
            "InvoiceDate",
            "CurrencyValue",
            "InvoiceBal1",
            "TermsCode",
            "CustomerPoNumber",
        ],
        AR_DOCUMENTS,
    );
    pay(sim, "MULLER", "100034", 5000.00, "2026-11-02");
    pay(sim, "MULLER", "100036", 4321.10, "2026-04-01");

    // A blank e-mail and on hold; padded e-mail and a blank on-hold flag (older suppliers).
    for (code, name, balance, currency, email, on_hold) in [
        (
            "SUP001",
            "Zürich Velo AG",
            5750.25,
            "CHF",
            "ap@zurich-velo.example",
            "N",
        ),
        ("SUP002", "O'Neill & Daughters", 0.0, "ZAR", "", "Y"),
        (
            "SUP003",
            "Peña <Hermanos> S.L.",
            432.10,
            "EUR",
            "  pagos@pena.example  ",
            "",
        ),
    ] {
        let code = if code == "SUP003" {
            code.to_string()
        } else {
            padded(code)
        };
        put(
            sim,
            "ApSupplier",
            json!({
                "Supplier": code, "SupplierName": name, "CurrentBalance": balance,
                "Currency": currency, "TermsCode": "30", "Email": email, "OnHold": on_hold,
            }),
        );
    }
    put_table(
        sim,
        "ApInvoice",
        &[
            "Supplier",
            "Invoice",
            "InvoiceDate",
            "DueDate",
            "OrigInvValue",
            "MthInvBal1",
        ],
        AP_INVOICES,
    );
    put_table(
        sim,
        "PorMasterHdr",
        &[
            "PurchaseOrder",
            "Supplier",
            "OrderEntryDate",
            "OrderDueDate",
            "OrderStatus",
        ],
        PURCHASE_ORDERS,
    );
    put_table(
        sim,
        "PorMasterDetail",
        &[
            "PurchaseOrder",
            "Line",
            "StockCode",
            "MOrderQty",
            "MReceivedQty",
            "MPrice",
        ],
        PO_LINES,
    );
    put_table(sim, "GrnDetails", &GRN_COLUMNS, GRNS);
}

/// The customer of the invoice posted before it.
fn late_customer(sim: &SimHandle) {
    customer(
        sim,
        &padded(LATE_CUSTOMER),
        "Late & Lamb's Bäckerei",
        json!({
            "Telephone": "+27 21 555 0199", "Email": "ap@latelamb.example",
            "SoldToAddr1": "3 Long St", "SoldToAddr4": "Cape Town", "SoldPostalCode": "8001",
            "CreditLimit": 2500.0,
        }),
    );
}

// ------------------------------------------------------------------------------------------
// The flows file
// ------------------------------------------------------------------------------------------

/// The flows file: a Salesforce flow (customers, invoices) and a Monday.com flow (suppliers,
/// AP invoices, purchase orders, AR invoices), rowversion everywhere, terms from SYSPRO.
/// `terms_on_account` adds one field to the ArCustomer mapping (the mid-test mapping change).
fn flows_toml(syspro: &str, sf: &str, monday: &str, terms_on_account: bool) -> String {
    let syspro_section = format!(
        r#"base_url = "{syspro}"
company = "{COMPANY}"
auth = "basic"
read_path = "odata"
operator = "{OPERATOR}"
password = "env:COMPANY_SYSPRO_PASSWORD"
terms_source = "syspro"
terms_days = {{ "{code}" = {days} }}
default_due_days = {DEFAULT_DUE_DAYS}"#,
        code = TERMS_OVERRIDE.0,
        days = TERMS_OVERRIDE.1,
    );
    let stage_map = STAGES
        .iter()
        .map(|(k, v)| format!("{k} = {v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let terms_rule = if terms_on_account {
        "SYSPRO_Terms__c = { from = \"TermsCode\", trim = true }"
    } else {
        ""
    };
    format!(
        r#"# issue 19: a hand-built company, every field mapped.
[settings]
state_path = "state.db"
max_attempts = 30

[[flows]]
id = "acme-sf"
timezone = "Africa/Johannesburg"
schedule = "15m"

[flows.syspro]
{syspro_section}

[flows.destination]
kind = "salesforce"
my_domain_url = "{sf}"
api_version = "v62.0"
client_id = "env:COMPANY_SF_CLIENT_ID"
client_secret = "env:COMPANY_SF_CLIENT_SECRET"
aging_field = "SYSPRO_Aging__c"
balance_field = "SYSPRO_Balance__c"
timeout_secs = 10
stage_map = {{ {stage_map} }}

[[flows.entities]]
entity = "ArCustomer"
change_detection = "rowversion"
[flows.entities.salesforce]
object = "Account"
external_id_field = "SYSPRO_Customer__c"
[flows.entities.mapping]
Name = {{ from = "Name", trim = true, max_len = 255 }}
BillingStreet = {{ concat = ["SoldToAddr1", "SoldToAddr2", "SoldToAddr3"], separator = ", " }}
BillingCity = {{ from = "SoldToAddr4", trim = true }}
BillingState = {{ from = "SoldToAddr5", trim = true }}
BillingPostalCode = {{ from = "SoldPostalCode", trim = true }}
Phone = {{ from = "Telephone", trim = true }}
SYSPRO_Email__c = {{ from = "Email", trim = true }}
CurrencyIsoCode = {{ from = "Currency", trim = true }}
SYSPRO_Credit_Limit__c = {{ from = "CreditLimit", type = "number", round = 2 }}
SYSPRO_On_Hold__c = {{ from = "CustomerOnHold", type = "bool" }}
{terms_rule}

[[flows.entities]]
entity = "ArInvoice"
change_detection = "rowversion"
initial_scope = "since"
since = "{SINCE}"
sweep = "daily"
[flows.entities.salesforce]
object = "Opportunity"
external_id_field = "SYSPRO_Invoice__c"
[flows.entities.mapping]
Name = {{ template = "{{DocumentType}} {{Invoice}}", labels = {{ DocumentType = {{ I = "Invoice", C = "Credit note", D = "Debit note" }} }}, max_len = 120 }}
Amount = {{ from = "CurrencyValue", type = "number", round = 2 }}
CloseDate = {{ from = "_DueDate", type = "date" }}
SYSPRO_Customer_PO__c = {{ from = "CustomerPoNumber", trim = true }}

[[flows]]
id = "acme-monday"
timezone = "America/Chicago"
schedule = "5m"

[flows.syspro]
{syspro_section}

[flows.destination]
kind = "monday"
api_url = "{monday}"
api_version = "2026-10"
token = "env:COMPANY_MONDAY_TOKEN"
mutations_per_board_per_minute = 1000
timeout_secs = 10

[[flows.entities]]
entity = "ApSupplier"
change_detection = "rowversion"
[flows.entities.monday]
board_id = "{SUPPLIER_BOARD}"
group_id = "topics"
item_name = "{{SupplierName}}"
id_column = "syspro_id"
[flows.entities.mapping]
currency = {{ from = "Currency", trim = true, column_type = "text" }}
balance = {{ from = "CurrentBalance", type = "number", round = 2, column_type = "numbers" }}
email = {{ from = "Email", trim = true, column_type = "email" }}
on_hold = {{ from = "OnHold", map = {{ Y = "Yes", N = "No" }}, default = "No", column_type = "status" }}

[[flows.entities]]
entity = "ApInvoice"
change_detection = "rowversion"
[flows.entities.monday]
board_id = "{AP_BOARD}"
item_name = "{{Invoice}} · {{Supplier.SupplierName}}"
id_column = "syspro_id"
[flows.entities.mapping]
supplier = {{ from = "Supplier.SupplierName", trim = true, column_type = "text" }}
amount = {{ from = "OrigInvValue", type = "number", round = 2, column_type = "numbers" }}
balance = {{ from = "_Balance", type = "number", column_type = "numbers" }}
invoice_date = {{ from = "InvoiceDate", type = "date", column_type = "date" }}
due_date = {{ from = "_DueDate", type = "date", column_type = "date" }}
status = {{ from = "_Status", map = {{ open = "Open", overdue = "Overdue", paid = "Paid" }}, column_type = "status" }}

[[flows.entities]]
entity = "PorMasterHdr"
change_detection = "rowversion"
[flows.entities.monday]
board_id = "{PO_BOARD}"
item_name = "PO {{PurchaseOrder}}"
id_column = "syspro_id"
[flows.entities.mapping]
supplier = {{ from = "Supplier", trim = true, column_type = "text" }}
ordered = {{ from = "OrderEntryDate", type = "date", column_type = "date" }}
due = {{ from = "OrderDueDate", type = "date", column_type = "date" }}
value = {{ from = "_OrderValue", type = "number", column_type = "numbers" }}
lines = {{ from = "_LineCount", type = "number", column_type = "numbers" }}
received = {{ from = "_GrnStatus", map = {{ none = "Not received", partial = "Partly received", received = "Received" }}, column_type = "status" }}
received_value = {{ from = "_ReceivedValue", type = "number", column_type = "numbers" }}
status = {{ from = "_Status", map = {{ open = "Open", complete = "Complete", cancelled = "Cancelled", unknown = "Unknown" }}, column_type = "status" }}

[[flows.entities]]
entity = "ArInvoice"
change_detection = "rowversion"
initial_scope = "since"
since = "{SINCE}"
[flows.entities.monday]
board_id = "{AR_BOARD}"
item_name = "INV {{Invoice}} · {{Customer.Name}}"
id_column = "syspro_id"
[flows.entities.mapping]
customer = {{ from = "Customer.Name", trim = true, column_type = "text" }}
kind = {{ from = "DocumentType", labels = {{ DocumentType = {{ I = "Invoice", C = "Credit note", D = "Debit note" }} }}, column_type = "text" }}
amount = {{ from = "CurrencyValue", type = "number", round = 2, column_type = "numbers" }}
balance = {{ from = "_Balance", type = "number", column_type = "numbers" }}
due_date = {{ from = "_DueDate", type = "date", column_type = "date" }}
aging = {{ from = "_Aging", column_type = "text" }}
status = {{ from = "_Status", map = {{ open = "Open", overdue = "Overdue", paid = "Paid" }}, column_type = "status" }}
"#
    )
}

// ------------------------------------------------------------------------------------------
// The simulators and the binary
// ------------------------------------------------------------------------------------------

/// Status column settings with these labels.
fn labels(names: &[&str]) -> Value {
    let m: Map<String, Value> = names
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), Value::from(*l)))
        .collect();
    json!({ "labels": m })
}

/// The three simulators, the flows file and its folder.
struct World {
    syspro: SimHandle,
    sf: OrgHandle,
    monday: MondayHandle,
    dir: tempfile::TempDir,
    cfg: PathBuf,
}

impl World {
    async fn start() -> World {
        let syspro = SysproSim::start(SimOptions {
            company: Some(sim_syspro::Company::empty()),
            company_id: COMPANY.into(),
            operators: vec![(OPERATOR.into(), PASSWORD.into())],
            ..SimOptions::default()
        })
        .await
        .expect("SYSPRO simulator");
        let sf = OrgSim::start(OrgOptions {
            client_id: SF_ID.into(),
            client_secret: SF_SECRET.into(),
            // The one field the mapping writes that a fresh org's schema lacks.
            extra_fields: vec![(
                "Opportunity".into(),
                FieldDef::text("SYSPRO_Customer_PO__c", 80),
            )],
            ..OrgOptions::default()
        })
        .await
        .expect("Salesforce simulator");
        let monday = MondaySim::start(MondayOptions {
            tokens: vec![MONDAY_TOKEN.into()],
            ..MondayOptions::default()
        })
        .await;
        let text = |id: &'static str, title: &'static str| (id, title, "text", Value::Null);
        let typed = |id: &'static str, ty: &'static str| (id, id, ty, Value::Null);
        let invoice_status = labels(&["Open", "Overdue", "Paid"]);
        monday.create_board(
            SUPPLIER_BOARD,
            "Suppliers",
            &[
                text("syspro_id", "SYSPRO ID"),
                text("currency", "Currency"),
                typed("balance", "numbers"),
                typed("email", "email"),
                ("on_hold", "On hold", "status", labels(&["Yes", "No"])),
            ],
        );
        monday.create_board(
            AP_BOARD,
            "AP invoices",
            &[
                text("syspro_id", "SYSPRO ID"),
                text("supplier", "Supplier"),
                typed("amount", "numbers"),
                typed("balance", "numbers"),
                typed("invoice_date", "date"),
                typed("due_date", "date"),
                ("status", "Status", "status", invoice_status.clone()),
            ],
        );
        monday.create_board(
            PO_BOARD,
            "Purchase orders",
            &[
                text("syspro_id", "SYSPRO ID"),
                text("supplier", "Supplier"),
                typed("ordered", "date"),
                typed("due", "date"),
                typed("value", "numbers"),
                typed("lines", "numbers"),
                (
                    "received",
                    "Received",
                    "status",
                    labels(&["Not received", "Partly received", "Received"]),
                ),
                typed("received_value", "numbers"),
                (
                    "status",
                    "Status",
                    "status",
                    labels(&["Open", "Complete", "Cancelled", "Unknown"]),
                ),
            ],
        );
        monday.create_board(
            AR_BOARD,
            "AR invoices",
            &[
                text("syspro_id", "SYSPRO ID"),
                text("customer", "Customer"),
                text("kind", "Document"),
                typed("amount", "numbers"),
                typed("balance", "numbers"),
                typed("due_date", "date"),
                text("aging", "Aging"),
                ("status", "Status", "status", invoice_status),
            ],
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("flows.toml");
        let w = World {
            syspro,
            sf,
            monday,
            dir,
            cfg,
        };
        w.write_flows(false);
        w
    }

    fn write_flows(&self, terms_on_account: bool) {
        let toml = flows_toml(
            &self.syspro.base_url(),
            &self.sf.url(),
            &self.monday.url(),
            terms_on_account,
        );
        std::fs::write(&self.cfg, toml).expect("write flows.toml");
    }

    /// `ml-connector --today D --json sync --once`: exit code and JSON summary.
    async fn sync(&self, today: &str) -> (i32, Value) {
        let cfg = self.cfg.clone();
        let dir = self.dir.path().to_path_buf();
        let today = today.to_string();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .current_dir(dir)
                .args(["--today", &today, "--json", "sync", "--once", "--config"])
                .arg(cfg)
                .env("COMPANY_SYSPRO_PASSWORD", PASSWORD)
                .env("COMPANY_SF_CLIENT_ID", SF_ID)
                .env("COMPANY_SF_CLIENT_SECRET", SF_SECRET)
                .env("COMPANY_MONDAY_TOKEN", MONDAY_TOKEN)
                .output()
        })
        .await
        .expect("join")
        .expect("run ml-connector");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let v: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("sync printed no JSON ({e}): {stdout}{stderr}"));
        (out.status.code().unwrap_or(-1), v)
    }
}

/// `(created, updated)` a sync's drain reports for a destination.
fn delivered(sync: &Value, destination: &str) -> (u64, u64) {
    let d = &sync["deliveries"][destination];
    let n = |k: &str| {
        d[k].as_u64()
            .unwrap_or_else(|| panic!("no {destination} {k}: {sync:#}"))
    };
    (n("created"), n("updated"))
}

/// Changes one sync queued for one entity of one flow.
fn queued(sync: &Value, flow: &str, entity: &str) -> u64 {
    sync["polls"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["flow"] == flow))
        .and_then(|p| p["entities"].as_array())
        .and_then(|es| es.iter().find(|e| e["entity"] == entity))
        .and_then(|e| e["queued"].as_u64())
        .unwrap_or_else(|| panic!("no poll report for {flow} {entity}: {sync:#}"))
}

/// Changes one sync queued, over every flow and entity.
fn queued_total(sync: &Value) -> u64 {
    sync["polls"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .flat_map(|p| p["entities"].as_array().cloned().unwrap_or_default())
                .filter_map(|e| e["queued"].as_u64())
                .sum()
        })
        .unwrap_or_else(|| panic!("no polls: {sync:#}"))
}

// ------------------------------------------------------------------------------------------
// What the mapping says: computed here, from SYSPRO's rows, without the connector's code
// ------------------------------------------------------------------------------------------

/// A destination value as the mapping says it must be.
#[derive(Debug, Clone, PartialEq)]
enum Want {
    /// This exact text.
    Text(String),
    /// Empty: absent, null or "".
    Blank,
    /// This amount, compared as a decimal (to the cent: every expected amount is rounded).
    Money(Decimal),
    /// This date.
    Date(NaiveDate),
    /// This boolean.
    Bool(bool),
}

/// Field → value of one destination record.
type Fields = BTreeMap<String, Want>;
/// SYSPRO key → fields, per destination record set.
type Expected = BTreeMap<String, Fields>;
/// A SYSPRO row as the simulator's snapshot shows it.
type Row = Map<String, Value>;
type Snapshot = BTreeMap<String, Vec<Row>>;

/// A `YYYY-MM-DD` date.
fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date")
}

/// A text column as SYSPRO sends it (padding kept); empty when absent.
fn text<'a>(r: &'a Row, f: &str) -> &'a str {
    r.get(f).and_then(Value::as_str).unwrap_or("")
}

/// A number column as SYSPRO's decimal text says it (never through `f64` arithmetic).
fn dec(r: &Row, f: &str) -> Decimal {
    match r.get(f) {
        Some(Value::Number(n)) => parse_dec(&n.to_string()),
        Some(Value::String(s)) if !s.trim().is_empty() => parse_dec(s),
        _ => Decimal::ZERO,
    }
}

/// Decimal text (or scientific notation) as a decimal.
fn parse_dec(s: &str) -> Decimal {
    let t = s.trim();
    Decimal::from_str(t)
        .or_else(|_| Decimal::from_scientific(t))
        .unwrap_or_else(|e| panic!("{s:?} is not a number: {e}"))
}

/// A date column (the snapshot writes `YYYY-MM-DD`).
fn date(r: &Row, f: &str) -> Option<NaiveDate> {
    r.get(f).and_then(Value::as_str).map(day)
}

/// Half-up (away from zero) to cents.
fn cents(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Trimmed text, or blank.
fn trimmed(s: &str) -> Want {
    match s.trim() {
        "" => Want::Blank,
        t => Want::Text(t.to_string()),
    }
}

/// A SYSPRO key: the parts without trailing blanks, joined by `|`.
fn key(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim_end())
        .collect::<Vec<_>>()
        .join("|")
}

/// A record's expected fields from pairs.
fn fields<const N: usize>(pairs: [(&str, Want); N]) -> Fields {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// One table of a snapshot.
fn rows<'a>(snap: &'a Snapshot, table: &str) -> &'a [Row] {
    snap.get(table).map(Vec::as_slice).unwrap_or_default()
}

/// `DocumentType` → words.
fn doc_label(doc: &str) -> &'static str {
    match doc.trim() {
        "I" => "Invoice",
        "C" => "Credit note",
        "D" => "Debit note",
        other => panic!("no label for document type {other:?}"),
    }
}

/// Terms code → days until due: `TblArTerms`, overridden by the flows file's `terms_days`.
fn terms(snap: &Snapshot) -> BTreeMap<String, u32> {
    let mut t: BTreeMap<String, u32> = rows(snap, "TblArTerms")
        .iter()
        .map(|r| {
            let days = dec(r, "DueDays").to_string().parse().expect("whole days");
            (text(r, "TermsCode").trim().to_string(), days)
        })
        .collect();
    t.insert(TERMS_OVERRIDE.0.into(), TERMS_OVERRIDE.1);
    t
}

/// `open`, `overdue` or `paid`: paid at a zero balance (to the cent); only a debit balance
/// on a document that is not a credit note can be overdue, the day after its due date.
fn status(balance: Decimal, due: NaiveDate, today: NaiveDate, credit_note: bool) -> &'static str {
    if cents(balance).is_zero() {
        "paid"
    } else if credit_note || balance.is_sign_negative() || due >= today {
        "open"
    } else {
        "overdue"
    }
}

/// Days past due in buckets; paid and not yet due are `current`.
fn aging(status: &str, due: NaiveDate, today: NaiveDate) -> &'static str {
    if status == "paid" || due >= today {
        return "current";
    }
    match (today - due).num_days() {
        1..=30 => "1-30",
        31..=60 => "31-60",
        61..=90 => "61-90",
        _ => "90+",
    }
}

/// `Open` / `Overdue` / `Paid`.
fn status_label(s: &str) -> &'static str {
    match s {
        "open" => "Open",
        "overdue" => "Overdue",
        _ => "Paid",
    }
}

/// An AR document as the destinations must see it on `today`.
struct ArDoc {
    key: String,
    customer: String,
    invoice: String,
    label: &'static str,
    amount: Decimal,
    balance: Decimal,
    due: NaiveDate,
    status: &'static str,
    aging: &'static str,
    customer_po: Want,
}

/// Every AR document of the snapshot, as the destinations must see it on `today`.
fn ar_docs(snap: &Snapshot, today: NaiveDate) -> Vec<ArDoc> {
    let terms = terms(snap);
    rows(snap, "ArInvoice")
        .iter()
        .map(|r| {
            let (cust, inv, doc) = (
                text(r, "Customer"),
                text(r, "Invoice"),
                text(r, "DocumentType"),
            );
            let days = terms
                .get(text(r, "TermsCode").trim())
                .copied()
                .unwrap_or(DEFAULT_DUE_DAYS);
            let due = date(r, "InvoiceDate")
                .and_then(|d| d.checked_add_days(Days::new(u64::from(days))))
                .expect("an invoice date");
            let balance = dec(r, "InvoiceBal1");
            let status = status(balance, due, today, doc.trim() == "C");
            ArDoc {
                key: key(&[cust, inv, doc]),
                customer: cust.trim_end().to_string(),
                invoice: inv.trim().to_string(),
                label: doc_label(doc),
                amount: cents(dec(r, "CurrencyValue")),
                balance: cents(balance),
                due,
                status,
                aging: aging(status, due, today),
                customer_po: trimmed(text(r, "CustomerPoNumber")),
            }
        })
        .collect()
}

/// AR keys the first sync takes: dated on or after go-live, or with a balance.
fn ar_scope(snap: &Snapshot) -> BTreeSet<String> {
    let since = day(SINCE);
    rows(snap, "ArInvoice")
        .iter()
        .filter(|r| {
            date(r, "InvoiceDate").is_some_and(|d| d >= since)
                || !cents(dec(r, "InvoiceBal1")).is_zero()
        })
        .map(|r| {
            key(&[
                text(r, "Customer"),
                text(r, "Invoice"),
                text(r, "DocumentType"),
            ])
        })
        .collect()
}

/// Customer code (trimmed) → trimmed name, for `Customer.Name` lookups.
fn customer_names(snap: &Snapshot) -> BTreeMap<String, String> {
    rows(snap, "ArCustomer")
        .iter()
        .map(|r| {
            (
                text(r, "Customer").trim_end().to_string(),
                text(r, "Name").trim().to_string(),
            )
        })
        .collect()
}

/// Accounts by customer code, and Opportunities by invoice key (without `AccountId`, which
/// [`check_salesforce`] checks against the org's Account Ids).
fn expected_salesforce(
    snap: &Snapshot,
    today: NaiveDate,
    scope: &BTreeSet<String>,
    terms_on_account: bool,
) -> (Expected, Expected) {
    let mut accounts = Expected::new();
    for r in rows(snap, "ArCustomer") {
        let street: Vec<&str> = ["SoldToAddr1", "SoldToAddr2", "SoldToAddr3"]
            .iter()
            .map(|f| text(r, f).trim())
            .filter(|s| !s.is_empty())
            .collect();
        let on_hold = matches!(
            text(r, "CustomerOnHold")
                .trim()
                .to_ascii_uppercase()
                .as_str(),
            "Y" | "YES" | "TRUE" | "1"
        );
        let mut f = fields([
            ("Name", trimmed(text(r, "Name"))),
            ("BillingStreet", trimmed(&street.join(", "))),
            ("BillingCity", trimmed(text(r, "SoldToAddr4"))),
            ("BillingState", trimmed(text(r, "SoldToAddr5"))),
            ("BillingPostalCode", trimmed(text(r, "SoldPostalCode"))),
            ("Phone", trimmed(text(r, "Telephone"))),
            ("SYSPRO_Email__c", trimmed(text(r, "Email"))),
            ("CurrencyIsoCode", trimmed(text(r, "Currency"))),
            (
                "SYSPRO_Credit_Limit__c",
                Want::Money(cents(dec(r, "CreditLimit"))),
            ),
            ("SYSPRO_On_Hold__c", Want::Bool(on_hold)),
        ]);
        if terms_on_account {
            f.insert("SYSPRO_Terms__c".into(), trimmed(text(r, "TermsCode")));
        }
        accounts.insert(key(&[text(r, "Customer")]), f);
    }
    let stage = |s: &str| {
        STAGES
            .iter()
            .find(|(k, _)| *k == s)
            .map(|(_, v)| Want::Text((*v).to_string()))
            .expect("a stage")
    };
    let opps = ar_docs(snap, today)
        .into_iter()
        .filter(|d| scope.contains(&d.key))
        .map(|d| {
            let f = fields([
                ("Name", Want::Text(format!("{} {}", d.label, d.invoice))),
                ("Amount", Want::Money(d.amount)),
                ("CloseDate", Want::Date(d.due)),
                ("StageName", stage(d.status)),
                ("SYSPRO_Aging__c", Want::Text(d.aging.into())),
                ("SYSPRO_Balance__c", Want::Money(d.balance)),
                ("SYSPRO_Customer_PO__c", d.customer_po),
            ]);
            (d.key, f)
        })
        .collect();
    (accounts, opps)
}

/// Every Monday.com board's items by SYSPRO key; `name` is the item name.
fn expected_monday(
    snap: &Snapshot,
    today: NaiveDate,
    scope: &BTreeSet<String>,
) -> BTreeMap<&'static str, Expected> {
    let mut boards = BTreeMap::new();

    let mut suppliers = Expected::new();
    let mut supplier_names = BTreeMap::new();
    for r in rows(snap, "ApSupplier") {
        let code = key(&[text(r, "Supplier")]);
        let name = text(r, "SupplierName").trim().to_string();
        supplier_names.insert(code.clone(), name.clone());
        let on_hold = match text(r, "OnHold").trim() {
            "Y" => "Yes",
            "N" | "" => "No",
            other => panic!("OnHold {other:?} has no label"),
        };
        suppliers.insert(
            code,
            fields([
                ("name", Want::Text(name)),
                ("currency", trimmed(text(r, "Currency"))),
                ("balance", Want::Money(cents(dec(r, "CurrentBalance")))),
                ("email", trimmed(text(r, "Email"))),
                ("on_hold", Want::Text(on_hold.into())),
            ]),
        );
    }
    boards.insert(SUPPLIER_BOARD, suppliers);

    let mut ap = Expected::new();
    for r in rows(snap, "ApInvoice") {
        let sup = text(r, "Supplier").trim_end().to_string();
        let sup_name = supplier_names.get(&sup).cloned().unwrap_or_default();
        let due = date(r, "DueDate").expect("a due date");
        let balance = dec(r, "MthInvBal1");
        let st = status(balance, due, today, false);
        ap.insert(
            key(&[text(r, "Supplier"), text(r, "Invoice")]),
            fields([
                (
                    "name",
                    Want::Text(format!("{} · {sup_name}", text(r, "Invoice").trim())),
                ),
                ("supplier", trimmed(&sup_name)),
                ("amount", Want::Money(cents(dec(r, "OrigInvValue")))),
                ("balance", Want::Money(cents(balance))),
                (
                    "invoice_date",
                    Want::Date(date(r, "InvoiceDate").expect("a date")),
                ),
                ("due_date", Want::Date(due)),
                ("status", Want::Text(status_label(st).into())),
            ]),
        );
    }
    boards.insert(AP_BOARD, ap);

    let mut pos = Expected::new();
    for r in rows(snap, "PorMasterHdr") {
        let po = text(r, "PurchaseOrder").trim_end();
        let lines: Vec<&Row> = rows(snap, "PorMasterDetail")
            .iter()
            .filter(|l| text(l, "PurchaseOrder").trim_end() == po)
            .collect();
        let value: Decimal = lines
            .iter()
            .map(|l| cents(dec(l, "MOrderQty") * dec(l, "MPrice")))
            .sum();
        let received_value: Decimal = rows(snap, "GrnDetails")
            .iter()
            .filter(|g| text(g, "PurchaseOrder").trim_end() == po)
            .map(|g| dec(g, "OrigGrnValue"))
            .sum();
        let full = lines
            .iter()
            .filter(|l| dec(l, "MReceivedQty") >= dec(l, "MOrderQty"))
            .count();
        let any = lines.iter().any(|l| !dec(l, "MReceivedQty").is_zero());
        let received = if !lines.is_empty() && full == lines.len() && any {
            "Received"
        } else if any {
            "Partly received"
        } else {
            "Not received"
        };
        let st = match text(r, "OrderStatus").trim() {
            "9" => "Complete",
            "*" => "Cancelled",
            "" => "Unknown",
            _ => "Open",
        };
        pos.insert(
            key(&[po]),
            fields([
                ("name", Want::Text(format!("PO {po}"))),
                ("supplier", trimmed(text(r, "Supplier"))),
                (
                    "ordered",
                    Want::Date(date(r, "OrderEntryDate").expect("a date")),
                ),
                ("due", Want::Date(date(r, "OrderDueDate").expect("a date"))),
                ("value", Want::Money(value)),
                ("lines", Want::Money(Decimal::from(lines.len()))),
                ("received", Want::Text(received.into())),
                ("received_value", Want::Money(cents(received_value))),
                ("status", Want::Text(st.into())),
            ]),
        );
    }
    boards.insert(PO_BOARD, pos);

    let names = customer_names(snap);
    let ar = ar_docs(snap, today)
        .into_iter()
        .filter(|d| scope.contains(&d.key))
        .map(|d| {
            let cust = names.get(&d.customer).cloned().unwrap_or_default();
            let f = fields([
                (
                    "name",
                    Want::Text(format!("INV {} · {cust}", d.invoice).trim().to_string()),
                ),
                ("customer", trimmed(&cust)),
                ("kind", Want::Text(d.label.into())),
                ("amount", Want::Money(d.amount)),
                ("balance", Want::Money(d.balance)),
                ("due_date", Want::Date(d.due)),
                ("aging", Want::Text(d.aging.into())),
                ("status", Want::Text(status_label(d.status).into())),
            ]);
            (d.key, f)
        })
        .collect();
    boards.insert(AR_BOARD, ar);
    boards
}

/// What one business date and SYSPRO state must look like at both destinations.
#[derive(Debug, Clone)]
struct Picture {
    accounts: Expected,
    opportunities: Expected,
    boards: BTreeMap<&'static str, Expected>,
}

impl Picture {
    fn of(
        snap: &Snapshot,
        today: NaiveDate,
        scope: &BTreeSet<String>,
        terms_on_account: bool,
    ) -> Picture {
        let (accounts, opportunities) = expected_salesforce(snap, today, scope, terms_on_account);
        Picture {
            accounts,
            opportunities,
            boards: expected_monday(snap, today, scope),
        }
    }

    /// `(created, updated)` per destination to go from `before` to `self`.
    fn writes_since(&self, before: &Picture) -> BTreeMap<&'static str, (u64, u64)> {
        let mut sf = diff(&before.accounts, &self.accounts);
        let o = diff(&before.opportunities, &self.opportunities);
        sf = (sf.0 + o.0, sf.1 + o.1);
        let mut monday = (0, 0);
        for (board, want) in &self.boards {
            let empty = Expected::new();
            let d = diff(before.boards.get(board).unwrap_or(&empty), want);
            monday = (monday.0 + d.0, monday.1 + d.1);
        }
        BTreeMap::from([("salesforce", sf), ("monday", monday)])
    }
}

/// Records new in `after`, and records whose fields differ.
fn diff(before: &Expected, after: &Expected) -> (u64, u64) {
    let mut out = (0, 0);
    for (k, f) in after {
        match before.get(k) {
            None => out.0 += 1,
            Some(b) if b != f => out.1 += 1,
            Some(_) => {}
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// What the destinations hold, compared
// ------------------------------------------------------------------------------------------

/// A stored value without its Monday.com shape (`{"label"}`, `{"date"}`, `{"email","text"}`).
fn plain(v: Option<&Value>) -> Option<Value> {
    match v {
        Some(Value::Object(o)) => ["label", "date", "email", "text"]
            .iter()
            .find_map(|k| o.get(*k))
            .cloned(),
        other => other.cloned(),
    }
}

/// Whether a stored value is what the mapping says (money compared as decimals).
fn matches(got: Option<&Value>, want: &Want) -> bool {
    let got = plain(got);
    match want {
        Want::Blank => match &got {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        },
        Want::Text(t) => got.as_ref().and_then(Value::as_str) == Some(t.as_str()),
        Want::Money(d) => {
            let n = match &got {
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
                _ => None,
            };
            n.and_then(|s| {
                Decimal::from_str(s.trim())
                    .or_else(|_| Decimal::from_scientific(s.trim()))
                    .ok()
            }) == Some(*d)
        }
        Want::Date(d) => {
            got.as_ref().and_then(Value::as_str) == Some(d.format("%Y-%m-%d").to_string().as_str())
        }
        Want::Bool(b) => got == Some(Value::Bool(*b)),
    }
}

/// Every difference between what must be and what is, one line each.
fn compare(what: &str, want: &Expected, got: &BTreeMap<String, Map<String, Value>>) -> Vec<String> {
    let mut out = Vec::new();
    for (k, fields) in want {
        let Some(rec) = got.get(k) else {
            out.push(format!("{what} {k}: missing"));
            continue;
        };
        for (f, w) in fields {
            if !matches(rec.get(f), w) {
                out.push(format!(
                    "{what} {k} field {f}: expected {w:?}, got {}",
                    rec.get(f).map_or("nothing".into(), Value::to_string)
                ));
            }
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        out.push(format!(
            "{what} {k}: present, but nothing says it should be"
        ));
    }
    out
}

/// Records of an org object by their external id; duplicates are reported.
fn by_external_id(
    org: &OrgHandle,
    object: &str,
    ext: &str,
    problems: &mut Vec<String>,
) -> BTreeMap<String, Map<String, Value>> {
    let mut out = BTreeMap::new();
    for r in org.records(object) {
        let k = r.text(ext).unwrap_or_default();
        let mut fields = r.fields.clone();
        fields.insert("Id".into(), Value::String(r.id.clone()));
        if out.insert(k.clone(), fields).is_some() {
            problems.push(format!(
                "salesforce {object}: two records for {ext} = {k:?}"
            ));
        }
    }
    out
}

/// Compares the org with the picture; also every Opportunity's `AccountId` with its
/// customer's Account. `skip_opps` are invoices expected to be still waiting.
fn check_salesforce(org: &OrgHandle, want: &Picture, skip_opps: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let accounts = by_external_id(org, "Account", "SYSPRO_Customer__c", &mut problems);
    let opps = by_external_id(org, "Opportunity", "SYSPRO_Invoice__c", &mut problems);
    problems.extend(compare("salesforce Account", &want.accounts, &accounts));
    let mut opp_want = want.opportunities.clone();
    for k in skip_opps {
        opp_want.remove(*k);
    }
    for (k, f) in opp_want.iter_mut() {
        let customer = k.split('|').next().unwrap_or_default();
        let id = accounts
            .get(customer)
            .and_then(|a| a.get("Id"))
            .and_then(Value::as_str)
            .map_or(Want::Blank, |id| Want::Text(id.to_string()));
        f.insert("AccountId".into(), id);
    }
    problems.extend(compare("salesforce Opportunity", &opp_want, &opps));
    problems
}

/// Compares every board with the picture (the item name as field `name`).
fn check_monday(monday: &MondayHandle, want: &Picture) -> Vec<String> {
    let mut problems = Vec::new();
    for (board, expected) in &want.boards {
        let mut got = BTreeMap::new();
        for it in monday.items(board) {
            let k = plain(it.values.get("syspro_id"))
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut values: Map<String, Value> = it.values.clone().into_iter().collect();
            values.insert("name".into(), Value::String(it.name.clone()));
            if got.insert(k.clone(), values).is_some() {
                problems.push(format!("monday board {board}: two items for {k:?}"));
            }
        }
        problems.extend(compare(&format!("monday board {board}"), expected, &got));
    }
    problems
}

/// Both destinations against the picture.
fn check(w: &World, want: &Picture, skip_opps: &[&str]) -> Vec<String> {
    let mut p = check_salesforce(&w.sf, want, skip_opps);
    p.extend(check_monday(&w.monday, want));
    p
}

/// What a sync queued, per flow and entity, in one line (for messages).
fn queued_line(sync: &Value) -> String {
    let mut out = Vec::new();
    for p in sync["polls"].as_array().into_iter().flatten() {
        for e in p["entities"].as_array().into_iter().flatten() {
            out.push(format!("{}/{}={}", p["flow"], e["entity"], e["queued"]));
        }
    }
    out.join(" ")
}

/// Differences between what a sync wrote and what going from `before` to `after` takes,
/// per destination (`(created, updated)`).
fn writes(sync: &Value, before: &Picture, after: &Picture) -> Vec<String> {
    let mut out = Vec::new();
    for (dest, want) in after.writes_since(before) {
        let got = delivered(sync, dest);
        if got != want {
            out.push(format!(
                "{dest} wrote (created, updated) = {got:?}, the changes take {want:?}; queued: {}",
                queued_line(sync)
            ));
        }
    }
    out
}

/// Records of `after` whose fields differ from `before`'s.
fn moved(before: &Expected, after: &Expected) -> usize {
    after
        .iter()
        .filter(|(k, f)| before.get(*k) != Some(*f))
        .count()
}

/// The mid-test terms change: `TblArTerms` "30" from 30 to 45 days.
fn change_terms_30_to_45(w: &World) {
    let mut ch = Map::new();
    ch.insert("DueDays".into(), json!(45));
    w.syspro
        .update("TblArTerms", &["30"], &ch)
        .expect("change terms");
}

/// Write calls the simulators counted: Salesforce API calls and Monday.com mutations.
fn write_counts(w: &World) -> (usize, u64) {
    (w.sf.api_calls(), w.monday.stats().mutations)
}

// ------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------

/// The whole "done when": every field right after each step, an idle sync writes nothing, and
/// the calendar, a goods receipt and a mapping change write exactly what they change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_built_company_syncs_to_the_cent_idles_and_resends_only_what_changed() {
    let w = World::start().await;
    build_company(&w.syspro);
    let (t1, t2) = (day(T1), day(T2));
    let scope = ar_scope(&w.syspro.snapshot());
    assert!(
        !scope.contains("ACME01|100030|I") && !scope.contains("ACME01|100041|I"),
        "paid before go-live: {scope:?}"
    );
    assert!(scope.contains("CAFE07|100038|I") && scope.contains(LATE_INVOICE));
    let mut problems: Vec<String> = Vec::new();
    let mut note = |step: &str, found: Vec<String>| {
        problems.extend(found.into_iter().map(|p| format!("[{step}] {p}")));
    };
    let nothing = Picture {
        accounts: Expected::new(),
        opportunities: Expected::new(),
        boards: BTreeMap::new(),
    };

    // 1. First sync. The invoice of a customer SYSPRO does not have yet waits: no Account is
    //    made up from its code, and the run says records are left queued (exit 5).
    let (code, first) = w.sync(T1).await;
    assert_eq!(code, 5, "the orphan invoice waits: {first:#}");
    let p1 = Picture::of(&w.syspro.snapshot(), t1, &scope, false);
    let sizes: Vec<usize> = [&p1.accounts, &p1.opportunities]
        .into_iter()
        .chain(p1.boards.values())
        .map(BTreeMap::len)
        .collect();
    // Accounts, Opportunities, then the supplier, AP, PO and AR boards: nothing vacuous.
    assert_eq!(sizes, [3, 11, 3, 4, 4, 11]);
    note("first sync", check(&w, &p1, &[LATE_INVOICE]));
    assert!(
        w.sf.accounts().iter().all(|a| {
            a.text("Name").as_deref() != Some(LATE_CUSTOMER)
                && a.text("SYSPRO_Customer__c").as_deref() != Some(LATE_CUSTOMER)
        }),
        "no Account for a customer SYSPRO does not have: {:?}",
        w.sf.accounts()
    );
    let mut p1_sent = p1.clone();
    p1_sent.opportunities.remove(LATE_INVOICE);
    note("first sync", writes(&first, &nothing, &p1_sent));

    // 2. The customer is entered in SYSPRO: the next sync creates its Account and links the
    //    waiting invoice to it.
    late_customer(&w.syspro);
    let (code, second) = w.sync(T1).await;
    assert_eq!(code, 0, "{second:#}");
    let p2 = Picture::of(&w.syspro.snapshot(), t1, &scope, false);
    note("customer arrives", check(&w, &p2, &[]));
    note("customer arrives", writes(&second, &p1_sent, &p2));

    // 3. Nothing changed: nothing is queued and nothing is written.
    let before = write_counts(&w);
    let (code, idle) = w.sync(T1).await;
    assert_eq!(code, 0, "{idle:#}");
    assert_eq!(
        queued_total(&idle),
        0,
        "an idle sync queues nothing: {idle:#}"
    );
    note("idle", writes(&idle, &p2, &p2));
    assert_eq!(
        write_counts(&w),
        before,
        "an idle sync calls no destination"
    );

    // 4. The next business date: 100034 and X-1 (due on T1) fall overdue, nothing else moves.
    let (code, next_day) = w.sync(T2).await;
    assert_eq!(code, 0, "{next_day:#}");
    let p4 = Picture::of(&w.syspro.snapshot(), t2, &scope, false);
    note("next day", check(&w, &p4, &[]));
    note("next day", writes(&next_day, &p2, &p4));

    // 5. Terms "30" go from 30 to 45 days in SYSPRO: every invoice on those terms gets its new
    //    due date, stage / status and aging; nothing but AR invoices is written. (That only
    //    the invoices the change moves are written is the test below.)
    change_terms_30_to_45(&w);
    let (code, terms_changed) = w.sync(T2).await;
    assert_eq!(code, 0, "{terms_changed:#}");
    let p5 = Picture::of(&w.syspro.snapshot(), t2, &scope, false);
    assert_eq!(
        moved(&p4.opportunities, &p5.opportunities),
        5,
        "the five in-scope invoices on terms 30 move"
    );
    note("terms change", check(&w, &p5, &[]));
    for (flow, entity) in [
        ("acme-sf", "ArCustomer"),
        ("acme-monday", "ApSupplier"),
        ("acme-monday", "ApInvoice"),
        ("acme-monday", "PorMasterHdr"),
    ] {
        assert_eq!(queued(&terms_changed, flow, entity), 0, "{flow} {entity}");
    }
    for (dest, (created, updated)) in p5.writes_since(&p4) {
        let (c, u) = delivered(&terms_changed, dest);
        assert!(
            c == created && u >= updated && u <= scope.len() as u64,
            "terms change: {dest} wrote ({c}, {u}), the changes take ({created}, {updated})"
        );
    }

    // 6. A goods receipt on PO 200003: 3 of 7 received (3 × 3.33333 = 9.99999 → 10.00).
    let mut ch = Map::new();
    ch.insert("MReceivedQty".into(), json!(3));
    w.syspro
        .update("PorMasterDetail", &["000000000200003", "1"], &ch)
        .expect("receive");
    put_table(
        &w.syspro,
        "GrnDetails",
        &GRN_COLUMNS,
        "00000000000000000006|106|000000000200003|1|SUP003|2026-11-25|10.00|3",
    );
    let (code, received) = w.sync(T2).await;
    assert_eq!(code, 0, "{received:#}");
    let p6 = Picture::of(&w.syspro.snapshot(), t2, &scope, false);
    note("goods receipt", check(&w, &p6, &[]));
    note("goods receipt", writes(&received, &p5, &p6));

    // 7. A mapping change on ArCustomer re-sends exactly the customers, once.
    w.write_flows(true);
    let (code, remapped) = w.sync(T2).await;
    assert_eq!(code, 0, "{remapped:#}");
    let p7 = Picture::of(&w.syspro.snapshot(), t2, &scope, true);
    note("mapping change", check(&w, &p7, &[]));
    assert_eq!(
        delivered(&remapped, "salesforce"),
        (0, p7.accounts.len() as u64),
        "every customer re-sent, nothing else: {remapped:#}"
    );
    assert_eq!(queued(&remapped, "acme-sf", "ArInvoice"), 0, "{remapped:#}");
    assert_eq!(delivered(&remapped, "monday"), (0, 0), "{remapped:#}");
    let before = write_counts(&w);
    let (code, idle) = w.sync(T2).await;
    assert_eq!(code, 0, "{idle:#}");
    assert_eq!(queued_total(&idle), 0, "sent once: {idle:#}");
    assert_eq!(
        write_counts(&w),
        before,
        "an idle sync calls no destination"
    );

    assert!(
        problems.is_empty(),
        "destination fields differ from what the mapping says:\n{}",
        problems.join("\n")
    );
}

/// A terms change in SYSPRO must re-send exactly the invoices whose due date (and so stage,
/// status or aging) it moves, as `docs/mapping.md` (Terms) says: here 5 of the 11 invoices
/// in scope, on each destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terms_change_resends_only_the_invoices_it_moves() {
    let w = World::start().await;
    build_company(&w.syspro);
    late_customer(&w.syspro);
    let scope = ar_scope(&w.syspro.snapshot());
    let (code, first) = w.sync(T1).await;
    assert_eq!(code, 0, "{first:#}");
    let before = Picture::of(&w.syspro.snapshot(), day(T1), &scope, false);
    let found = check(&w, &before, &[]);
    assert!(found.is_empty(), "{}", found.join("\n"));

    change_terms_30_to_45(&w);
    let (code, sync) = w.sync(T1).await;
    assert_eq!(code, 0, "{sync:#}");
    let after = Picture::of(&w.syspro.snapshot(), day(T1), &scope, false);
    assert_eq!(moved(&before.opportunities, &after.opportunities), 5);
    let mut found = check(&w, &after, &[]);
    found.extend(writes(&sync, &before, &after));
    assert!(found.is_empty(), "{}", found.join("\n"));
}
