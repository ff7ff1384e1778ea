//! The simulated company database: table schemas (SQL-like column types), rows kept in key
//! order, SQL comparison semantics, and a seeded generator of realistic data.
//!
//! Keys compare the way SQL Server compares them with a binary collation and ANSI padding:
//! byte-wise, case-sensitive, trailing blanks ignored (`'I '` = `'I'`).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

/// A column's SQL type, as far as the wire cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// `varchar(n)` / `char(n)`.
    Str,
    /// `decimal(p, s)`: `width` is what e.net right-aligns to, `scale` the decimals it prints.
    Num {
        /// Digits after the point.
        scale: u8,
        /// Characters e.net right-aligns to.
        width: u8,
    },
    /// A date-only `datetime`.
    Date,
    /// SQL `rowversion` (`TimeStamp`).
    RowVersion,
}

/// A column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Name as in SQL.
    pub name: &'static str,
    /// Type.
    pub ty: ColType,
}

/// A table's shape.
#[derive(Debug, Clone)]
pub struct TableSchema {
    /// Table / entity set name.
    pub name: &'static str,
    /// Key column indexes, in key order.
    pub keys: Vec<usize>,
    /// Columns.
    pub columns: Vec<Column>,
}

impl TableSchema {
    fn new(name: &'static str, keys: &[&str], cols: &[(&'static str, ColType)]) -> Self {
        let columns: Vec<Column> = cols
            .iter()
            .map(|(n, t)| Column { name: n, ty: *t })
            .chain(std::iter::once(Column {
                name: "TimeStamp",
                ty: ColType::RowVersion,
            }))
            .collect();
        let keys = keys
            .iter()
            .map(|k| columns.iter().position(|c| c.name == *k).unwrap_or(0))
            .collect();
        TableSchema {
            name,
            keys,
            columns,
        }
    }

    /// Index of a column (case-sensitive, as OData is).
    pub fn col(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Index of a column, ignoring case (e.net is case-insensitive).
    pub fn col_ci(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text, raw (padding kept).
    Str(String),
    /// A decimal.
    Num(f64),
    /// A date, or none (`0000-00-00` on e.net, `null` on OData).
    Date(Option<NaiveDate>),
    /// A rowversion.
    Rv(u64),
}

impl Cell {
    /// SQL comparison (ANSI padding for strings). `None` when incomparable (null dates).
    pub fn sql_cmp(&self, other: &Cell) -> Option<Ordering> {
        match (self, other) {
            (Cell::Str(a), Cell::Str(b)) => {
                Some(a.trim_end_matches(' ').cmp(b.trim_end_matches(' ')))
            }
            (Cell::Num(a), Cell::Num(b)) => a.partial_cmp(b),
            (Cell::Date(Some(a)), Cell::Date(Some(b))) => Some(a.cmp(b)),
            (Cell::Rv(a), Cell::Rv(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }

    /// The normalised JSON shape (dates `YYYY-MM-DD`, rowversion as a number): what
    /// [`crate::SimHandle::snapshot`] returns.
    pub fn to_plain_json(&self) -> Value {
        match self {
            Cell::Str(s) => Value::String(s.clone()),
            Cell::Num(n) => num_json(*n),
            Cell::Date(Some(d)) => Value::String(d.format("%Y-%m-%d").to_string()),
            Cell::Date(None) => Value::Null,
            Cell::Rv(v) => json!(v),
        }
    }
}

/// A number as JSON: integers without a fraction.
pub fn num_json(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        json!(n as i64)
    } else {
        serde_json::Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// A key, ordered like SQL orders it.
#[derive(Debug, Clone)]
pub struct RowKey(pub Vec<Cell>);

impl PartialEq for RowKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for RowKey {}
impl PartialOrd for RowKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for RowKey {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            match a.sql_cmp(b).unwrap_or(Ordering::Equal) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

/// A table: schema plus rows in key order.
#[derive(Debug, Clone)]
pub struct Table {
    /// The shape.
    pub schema: TableSchema,
    /// Rows by key.
    pub rows: BTreeMap<RowKey, Vec<Cell>>,
}

impl Table {
    fn new(schema: TableSchema) -> Self {
        Table {
            schema,
            rows: BTreeMap::new(),
        }
    }

    /// The key of a row.
    pub fn key_of(&self, row: &[Cell]) -> RowKey {
        RowKey(self.schema.keys.iter().map(|&i| row[i].clone()).collect())
    }

    /// A key from its parts as text (numeric key parts parsed).
    pub fn key_from_parts(&self, parts: &[&str]) -> Result<RowKey, String> {
        if parts.len() != self.schema.keys.len() {
            return Err(format!(
                "{} has {} key columns, got {} parts",
                self.schema.name,
                self.schema.keys.len(),
                parts.len()
            ));
        }
        let mut out = Vec::new();
        for (&i, p) in self.schema.keys.iter().zip(parts) {
            out.push(match self.schema.columns[i].ty {
                ColType::Num { .. } => Cell::Num(
                    p.trim()
                        .parse()
                        .map_err(|_| format!("key part {p:?} is not a number"))?,
                ),
                _ => Cell::Str((*p).to_string()),
            });
        }
        Ok(RowKey(out))
    }

    /// A row as plain JSON.
    pub fn row_json(&self, row: &[Cell]) -> Map<String, Value> {
        self.schema
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name.to_string(), v.to_plain_json()))
            .collect()
    }
}

/// How many rows of each kind the generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompanyCounts {
    /// `ArCustomer` rows.
    pub customers: usize,
    /// `ArInvoice` rows.
    pub invoices: usize,
    /// `ArInvoicePay` rows (each reduces an invoice balance).
    pub payments: usize,
    /// `ApSupplier` rows.
    pub suppliers: usize,
    /// `ApInvoice` rows.
    pub ap_invoices: usize,
    /// `PorMasterHdr` rows (each with 1–4 `PorMasterDetail` lines).
    pub purchase_orders: usize,
}

impl Default for CompanyCounts {
    fn default() -> Self {
        CompanyCounts {
            customers: 20,
            invoices: 60,
            payments: 25,
            suppliers: 8,
            ap_invoices: 20,
            purchase_orders: 10,
        }
    }
}

/// One SYSPRO company: its tables and the rowversion counter.
#[derive(Debug, Clone)]
pub struct Company {
    tables: BTreeMap<&'static str, Table>,
    next_rv: u64,
    next_invoice: u64,
    next_entry: u64,
}

const fn n(scale: u8, width: u8) -> ColType {
    ColType::Num { scale, width }
}
const S: ColType = ColType::Str;
const D: ColType = ColType::Date;
const AMT: ColType = n(2, 15);

fn schemas() -> Vec<TableSchema> {
    vec![
        TableSchema::new(
            "ArCustomer",
            &["Customer"],
            &[
                ("Customer", S),
                ("Name", S),
                ("ShortName", S),
                ("Contact", S),
                ("Telephone", S),
                ("Email", S),
                ("SoldToAddr1", S),
                ("SoldToAddr2", S),
                ("SoldToAddr3", S),
                ("SoldToAddr4", S),
                ("SoldToAddr5", S),
                ("SoldPostalCode", S),
                ("ShipToAddr1", S),
                ("ShipToAddr2", S),
                ("ShipToAddr3", S),
                ("ShipToAddr4", S),
                ("ShipToAddr5", S),
                ("Currency", S),
                ("TermsCode", S),
                ("CustomerOnHold", S),
                ("CreditLimit", AMT),
                ("HighestBalance", AMT),
                ("OutstOrdVal", AMT),
                ("DateCustAdded", D),
                ("DateLastSale", D),
                ("DateLastPay", D),
            ],
        ),
        TableSchema::new(
            "ArInvoice",
            &["Customer", "Invoice", "DocumentType"],
            &[
                ("Customer", S),
                ("Invoice", S),
                ("DocumentType", S),
                ("InvoiceDate", D),
                ("PodEntryDate", D),
                ("CurrencyValue", AMT),
                ("InvoiceBal1", AMT),
                ("InvoiceBal2", AMT),
                ("InvoiceBal3", AMT),
                ("TaxPortion", AMT),
                ("DiscBal", AMT),
                ("TermsCode", S),
                ("SalesOrder", S),
                ("CustomerPoNumber", S),
                ("PostCurrency", S),
            ],
        ),
        TableSchema::new(
            "ArInvoicePay",
            &["Customer", "Invoice", "DocumentType", "EntryNumber"],
            &[
                ("Customer", S),
                ("Invoice", S),
                ("DocumentType", S),
                ("EntryNumber", n(0, 10)),
                ("JournalDate", D),
                ("TrnValue", AMT),
                ("DiscValue", AMT),
                ("PostValue", AMT),
                ("TrnType", S),
                ("Journal", n(0, 10)),
                ("Reference", S),
                ("PaymentNumber", S),
                ("PostCurrency", S),
            ],
        ),
        TableSchema::new(
            "ApSupplier",
            &["Supplier"],
            &[
                ("Supplier", S),
                ("SupplierName", S),
                ("CurrentBalance", AMT),
                ("Currency", S),
                ("TermsCode", S),
                ("Email", S),
                ("OnHold", S),
            ],
        ),
        TableSchema::new(
            "ApInvoice",
            &["Supplier", "Invoice"],
            &[
                ("Supplier", S),
                ("Invoice", S),
                ("InvoiceDate", D),
                ("DueDate", D),
                ("OrigInvValue", AMT),
                ("MthInvBal1", AMT),
                ("MthInvBal2", AMT),
                ("MthInvBal3", AMT),
            ],
        ),
        TableSchema::new(
            "PorMasterHdr",
            &["PurchaseOrder"],
            &[
                ("PurchaseOrder", S),
                ("Supplier", S),
                ("OrderEntryDate", D),
                ("OrderDueDate", D),
                ("DatePoCompleted", D),
                ("OrderStatus", S),
            ],
        ),
        TableSchema::new(
            "PorMasterDetail",
            &["PurchaseOrder", "Line"],
            &[
                ("PurchaseOrder", S),
                ("Line", n(0, 4)),
                ("StockCode", S),
                ("MOrderQty", n(6, 18)),
                ("MReceivedQty", n(6, 18)),
                ("MPrice", n(5, 15)),
                ("MLatestDueDate", D),
            ],
        ),
        TableSchema::new(
            "GrnDetails",
            &["Grn", "GrnSource", "Journal", "JournalEntry"],
            &[
                ("Grn", S),
                ("GrnSource", S),
                ("Journal", n(0, 10)),
                ("JournalEntry", n(0, 10)),
                ("PurchaseOrder", S),
                ("PurchaseOrderLin", n(0, 4)),
                ("Supplier", S),
                ("OrigReceiptDate", D),
                ("OrigGrnValue", AMT),
                ("QtyReceived", n(6, 18)),
            ],
        ),
        TableSchema::new(
            "TblArTerms",
            &["TermsCode"],
            &[("TermsCode", S), ("Description", S), ("DueDays", n(0, 4))],
        ),
    ]
}

/// Legal names with the characters that break naive escaping: apostrophes, double quotes,
/// backslashes, ampersands, angle brackets and Windows-1252 non-ASCII letters.
const NAMES: &[&str] = &[
    "Bayside Bikes (Pty) Ltd",
    "O'Brien & Sons Ltd",
    "Müller Fahrräder GmbH",
    "Société Générale d'Équipement SA",
    "\"Quick\" Cycles Inc.",
    "Back\\Slash Trading CC",
    "Ærø Sykkel AS",
    "Peña <Hermanos> S.L.",
    "Smith's \"Best\" Wheels",
    "Zürich Velo AG",
    "Crème Brûlée Deliveries",
    "Nguyen & O'Neill Partners",
    "Kowalski Rowery Sp. z o.o.",
    "Tip-Top Tyres 50% Off Ltd",
    "Café São Paulo Ltda",
];

/// Terms codes and due days (`TblArTerms`).
const TERMS: &[(&str, &str, u32)] = &[
    ("CO", "Cash on delivery", 0),
    ("07", "7 days", 7),
    ("30", "30 days", 30),
    ("60", "60 days", 60),
    ("EM", "End of month", 31),
];

impl Company {
    /// An empty company (every table present, no rows).
    pub fn empty() -> Self {
        Company {
            tables: schemas()
                .into_iter()
                .map(|s| (s.name, Table::new(s)))
                .collect(),
            next_rv: 2000,
            next_invoice: 100_000,
            next_entry: 1,
        }
    }

    /// Seeded realistic data. `today` anchors dates: some invoices are paid, some overdue.
    pub fn generate(seed: u64, counts: CompanyCounts, today: NaiveDate) -> Self {
        let mut c = Company::empty();
        let mut rng = StdRng::seed_from_u64(seed);
        for (code, desc, days) in TERMS {
            c.put(
                "TblArTerms",
                vec![
                    Cell::Str((*code).into()),
                    Cell::Str((*desc).into()),
                    Cell::Num(f64::from(*days)),
                ],
            );
        }
        let ago = |d: u64| today.checked_sub_days(Days::new(d)).unwrap_or(today);
        let mut customers = Vec::new();
        for i in 0..counts.customers {
            // Codes are zero-padded; some were keyed with a trailing blank, as real data has.
            let code = if i % 5 == 3 {
                format!("{:07} ", 10 + i)
            } else {
                format!("{:07}", 10 + i)
            };
            let name = NAMES[i % NAMES.len()];
            let name = if i >= NAMES.len() {
                format!("{name} {}", i / NAMES.len() + 1)
            } else {
                name.to_string()
            };
            let terms = TERMS[rng.random_range(0..TERMS.len())].0;
            let short: String = name.chars().take(20).collect();
            let email = format!("accounts{i}@example.com");
            let added = ago(rng.random_range(200..2000));
            let row = vec![
                Cell::Str(code.clone()),
                Cell::Str(name),
                Cell::Str(short),
                Cell::Str(["Anna", "Bongani", "Chloé", "D'Arcy"][i % 4].into()),
                Cell::Str(format!("+27 21 555 {:04}", i)),
                Cell::Str(email),
                Cell::Str(format!("{} Main Road", 1 + i)),
                Cell::Str("Suite 2".into()),
                Cell::Str("Cape Town".into()),
                Cell::Str(String::new()),
                Cell::Str(String::new()),
                Cell::Str(format!("{:04}", 7000 + i)),
                Cell::Str(format!("{} Harbour St", 1 + i)),
                Cell::Str(String::new()),
                Cell::Str("Cape Town".into()),
                Cell::Str(String::new()),
                Cell::Str(String::new()),
                Cell::Str(["ZAR", "USD", "EUR"][i % 3].into()),
                Cell::Str(terms.into()),
                Cell::Str(if i % 11 == 7 { "Y" } else { "N" }.into()),
                Cell::Num(f64::from(rng.random_range(10..500u32)) * 1000.0),
                Cell::Num(0.0),
                Cell::Num(0.0),
                Cell::Date(Some(added)),
                Cell::Date(None),
                Cell::Date(None),
            ];
            c.put("ArCustomer", row);
            customers.push((code, terms));
        }
        let mut invoices = Vec::new();
        for i in 0..counts.invoices {
            if customers.is_empty() {
                break;
            }
            let (cust, terms) = customers[rng.random_range(0..customers.len())].clone();
            // Several invoices share a date: same-day postings are the norm.
            let date = ago(rng.random_range(0..120));
            let value = f64::from(rng.random_range(1_000..2_000_000u32)) / 100.0;
            let no = c.next_invoice_no();
            let _ = i;
            c.put(
                "ArInvoice",
                vec![
                    Cell::Str(cust.clone()),
                    Cell::Str(no.clone()),
                    Cell::Str("I ".into()),
                    Cell::Date(Some(date)),
                    Cell::Date(if rng.random_bool(0.5) {
                        Some(date)
                    } else {
                        None
                    }),
                    Cell::Num(value),
                    Cell::Num(value),
                    Cell::Num(0.0),
                    Cell::Num(0.0),
                    Cell::Num(round2(value * 0.15 / 1.15)),
                    Cell::Num(0.0),
                    Cell::Str(terms.into()),
                    Cell::Str(format!("{:015}", 50_000 + i)),
                    Cell::Str(format!("PO-{}", 900 + i)),
                    Cell::Str("ZAR".into()),
                ],
            );
            invoices.push((cust, no, value));
        }
        for i in 0..counts.payments {
            if invoices.is_empty() {
                break;
            }
            let (cust, no, value) = invoices[rng.random_range(0..invoices.len())].clone();
            // Half the payments settle the invoice in full, the rest in part.
            let amount = if i % 2 == 0 {
                value
            } else {
                round2(value / 3.0)
            };
            let date = ago(rng.random_range(0..30));
            let _ = c.post_payment_on(&cust, &no, "I ", amount, date);
        }
        let mut suppliers = Vec::new();
        for i in 0..counts.suppliers {
            let code = format!("S{:05}", 100 + i);
            let name = NAMES[(i + 3) % NAMES.len()];
            c.put(
                "ApSupplier",
                vec![
                    Cell::Str(code.clone()),
                    Cell::Str(format!("{name} Supplies")),
                    Cell::Num(0.0),
                    Cell::Str("ZAR".into()),
                    Cell::Str(TERMS[i % TERMS.len()].0.into()),
                    Cell::Str(format!("ap{i}@supplier.example")),
                    Cell::Str(supplier_on_hold(i).into()),
                ],
            );
            suppliers.push(code);
        }
        for i in 0..counts.ap_invoices {
            if suppliers.is_empty() {
                break;
            }
            let sup = suppliers[rng.random_range(0..suppliers.len())].clone();
            let date = ago(rng.random_range(0..120));
            let due = date.checked_add_days(Days::new(30)).unwrap_or(date);
            let value = f64::from(rng.random_range(500..500_000u32)) / 100.0;
            let bal = if i % 3 == 0 { 0.0 } else { value };
            c.put(
                "ApInvoice",
                vec![
                    Cell::Str(sup),
                    Cell::Str(format!("SINV-{:05}", 1 + i)),
                    Cell::Date(Some(date)),
                    Cell::Date(Some(due)),
                    Cell::Num(value),
                    Cell::Num(bal),
                    Cell::Num(0.0),
                    Cell::Num(0.0),
                ],
            );
        }
        let mut grn = 1u32;
        for i in 0..counts.purchase_orders {
            if suppliers.is_empty() {
                break;
            }
            let po = format!("{:015}", 150_800 + i);
            let sup = suppliers[i % suppliers.len()].clone();
            let date = ago(rng.random_range(0..90));
            let due = date.checked_add_days(Days::new(14)).unwrap_or(date);
            let status = ["0", "1", "4", "9", "*"][i % 5];
            c.put(
                "PorMasterHdr",
                vec![
                    Cell::Str(po.clone()),
                    Cell::Str(sup.clone()),
                    Cell::Date(Some(date)),
                    Cell::Date(Some(due)),
                    Cell::Date(if status == "9" { Some(due) } else { None }),
                    Cell::Str(status.into()),
                ],
            );
            for line in 1..=rng.random_range(1..=4u32) {
                let qty = f64::from(rng.random_range(1..100u32));
                let price = f64::from(rng.random_range(100..100_000u32)) / 100.0;
                let received = if status == "9" {
                    qty
                } else if status == "4" {
                    (qty / 2.0).floor()
                } else {
                    0.0
                };
                c.put(
                    "PorMasterDetail",
                    vec![
                        Cell::Str(po.clone()),
                        Cell::Num(f64::from(line)),
                        Cell::Str(format!("BK-{:03}", line * 7 + i as u32)),
                        Cell::Num(qty),
                        Cell::Num(received),
                        Cell::Num(price),
                        Cell::Date(Some(due)),
                    ],
                );
                if received > 0.0 {
                    c.put(
                        "GrnDetails",
                        vec![
                            Cell::Str(format!("{:020}", grn)),
                            Cell::Str("P".into()),
                            Cell::Num(f64::from(100 + grn)),
                            Cell::Num(f64::from(line)),
                            Cell::Str(po.clone()),
                            Cell::Num(f64::from(line)),
                            Cell::Str(sup.clone()),
                            Cell::Date(Some(due)),
                            Cell::Num(round2(received * price)),
                            Cell::Num(received),
                        ],
                    );
                    grn += 1;
                }
            }
        }
        c
    }

    fn next_invoice_no(&mut self) -> String {
        self.next_invoice += 1;
        format!("{}", self.next_invoice)
    }

    fn bump_rv(&mut self) -> u64 {
        self.next_rv += 1;
        self.next_rv
    }

    /// Inserts or replaces a full row (the `TimeStamp` column is assigned here).
    fn put(&mut self, table: &str, mut row: Vec<Cell>) {
        let rv = self.bump_rv();
        row.push(Cell::Rv(rv));
        if let Some(t) = self.tables.get_mut(table) {
            let key = t.key_of(&row);
            t.rows.insert(key, row);
        }
    }

    /// The tables by name.
    pub fn tables(&self) -> &BTreeMap<&'static str, Table> {
        &self.tables
    }

    /// One table.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// One table, ignoring case (e.net).
    pub fn table_ci(&self, name: &str) -> Option<&Table> {
        self.tables
            .values()
            .find(|t| t.schema.name.eq_ignore_ascii_case(name))
    }

    /// `TblArTerms` as terms code → due days (for generating flow configs).
    pub fn terms_days(&self) -> BTreeMap<String, u32> {
        TERMS
            .iter()
            .map(|(c, _, d)| ((*c).to_string(), *d))
            .collect()
    }

    /// The current rowversion high-water mark.
    pub fn max_row_version(&self) -> u64 {
        self.next_rv
    }

    /// Rows of every table as plain JSON (dates `YYYY-MM-DD`, rowversion numbers), key order.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<Map<String, Value>>> {
        self.tables
            .iter()
            .map(|(n, t)| {
                (
                    (*n).to_string(),
                    t.rows.values().map(|r| t.row_json(r)).collect(),
                )
            })
            .collect()
    }

    /// Inserts a row given as JSON (missing columns default to empty / zero / no date).
    /// Fails when the key exists or a value has the wrong type.
    pub fn insert(&mut self, table: &str, values: &Map<String, Value>) -> Result<(), String> {
        let t = self
            .tables
            .get(table)
            .ok_or_else(|| format!("no table {table}"))?;
        let mut row = Vec::new();
        for col in &t.schema.columns {
            if col.ty == ColType::RowVersion {
                continue;
            }
            row.push(cell_from_json(col, values.get(col.name))?);
        }
        row.push(Cell::Rv(0));
        let key = t.key_of(&row);
        if t.rows.contains_key(&key) {
            return Err(format!("duplicate key in {table}"));
        }
        row.pop();
        self.put(table, row);
        Ok(())
    }

    /// Changes some columns of a row (bumping its rowversion).
    pub fn update(
        &mut self,
        table: &str,
        key: &[&str],
        changes: &Map<String, Value>,
    ) -> Result<(), String> {
        let rv = self.bump_rv();
        let t = self
            .tables
            .get_mut(table)
            .ok_or_else(|| format!("no table {table}"))?;
        let k = t.key_from_parts(key)?;
        let mut new_cells = Vec::new();
        for (name, v) in changes {
            let i = t
                .schema
                .col(name)
                .ok_or_else(|| format!("no column {name}"))?;
            if t.schema.keys.contains(&i) {
                return Err(format!("{name} is a key column"));
            }
            new_cells.push((i, cell_from_json(&t.schema.columns[i], Some(v))?));
        }
        let row = t
            .rows
            .get_mut(&k)
            .ok_or_else(|| format!("no row {key:?} in {table}"))?;
        for (i, c) in new_cells {
            row[i] = c;
        }
        if let Some(last) = row.last_mut() {
            *last = Cell::Rv(rv);
        }
        Ok(())
    }

    /// Deletes a row; true when it existed.
    pub fn delete(&mut self, table: &str, key: &[&str]) -> Result<bool, String> {
        let t = self
            .tables
            .get_mut(table)
            .ok_or_else(|| format!("no table {table}"))?;
        let k = t.key_from_parts(key)?;
        Ok(t.rows.remove(&k).is_some())
    }

    /// Posts an AR invoice for a customer; returns its invoice number.
    pub fn post_invoice(
        &mut self,
        customer: &str,
        date: NaiveDate,
        amount: f64,
        terms: &str,
    ) -> String {
        let no = self.next_invoice_no();
        self.post_invoice_numbered(customer, &no, date, amount, terms);
        no
    }

    /// Posts an AR invoice with a given number (replacing one with the same key).
    pub fn post_invoice_numbered(
        &mut self,
        customer: &str,
        invoice: &str,
        date: NaiveDate,
        amount: f64,
        terms: &str,
    ) {
        self.put(
            "ArInvoice",
            vec![
                Cell::Str(customer.into()),
                Cell::Str(invoice.into()),
                Cell::Str("I ".into()),
                Cell::Date(Some(date)),
                Cell::Date(None),
                Cell::Num(amount),
                Cell::Num(amount),
                Cell::Num(0.0),
                Cell::Num(0.0),
                Cell::Num(round2(amount * 0.15 / 1.15)),
                Cell::Num(0.0),
                Cell::Str(terms.into()),
                Cell::Str(String::new()),
                Cell::Str(String::new()),
                Cell::Str("ZAR".into()),
            ],
        );
    }

    /// Posts a payment: `InvoiceBal1` goes down by `amount` (never below zero) and an
    /// `ArInvoicePay` row is added. No date of the invoice changes. Returns the new balance.
    pub fn post_payment_on(
        &mut self,
        customer: &str,
        invoice: &str,
        doc_type: &str,
        amount: f64,
        date: NaiveDate,
    ) -> Result<f64, String> {
        let t = self.tables.get("ArInvoice").ok_or("no ArInvoice")?;
        let k = t.key_from_parts(&[customer, invoice, doc_type])?;
        let row = t
            .rows
            .get(&k)
            .ok_or_else(|| format!("no invoice {customer}|{invoice}"))?;
        let bal_i = t.schema.col("InvoiceBal1").ok_or("no InvoiceBal1")?;
        let old = match row[bal_i] {
            Cell::Num(v) => v,
            _ => 0.0,
        };
        let new = round2((old - amount).max(0.0));
        let mut ch = Map::new();
        ch.insert("InvoiceBal1".into(), num_json(new));
        self.update("ArInvoice", &[customer, invoice, doc_type], &ch)?;
        let entry = self.next_entry;
        self.next_entry += 1;
        self.put(
            "ArInvoicePay",
            vec![
                Cell::Str(customer.into()),
                Cell::Str(invoice.into()),
                Cell::Str(doc_type.into()),
                Cell::Num(entry as f64),
                Cell::Date(Some(date)),
                Cell::Num(-amount),
                Cell::Num(0.0),
                Cell::Num(-amount),
                Cell::Str("P".into()),
                Cell::Num(entry as f64 + 500.0),
                Cell::Str(format!("EFT {entry}")),
                Cell::Str(format!("{:06}", entry)),
                Cell::Str("ZAR".into()),
            ],
        );
        Ok(new)
    }
}

/// `ApSupplier.OnHold`: mostly `N`, some `Y`, and blank as rows created before the column was
/// used have it. From the row number, not the generator's random stream, so that adding the
/// column left every other generated value as it was.
fn supplier_on_hold(i: usize) -> &'static str {
    match i % 7 {
        2 | 5 => "Y",
        4 => "",
        _ => "N",
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn cell_from_json(col: &Column, v: Option<&Value>) -> Result<Cell, String> {
    let bad = || format!("bad value for {}: {v:?}", col.name);
    Ok(match col.ty {
        ColType::Str => match v {
            None | Some(Value::Null) => Cell::Str(String::new()),
            Some(Value::String(s)) => Cell::Str(s.clone()),
            Some(_) => return Err(bad()),
        },
        ColType::Num { .. } => match v {
            None | Some(Value::Null) => Cell::Num(0.0),
            Some(Value::Number(n)) => Cell::Num(n.as_f64().ok_or_else(bad)?),
            Some(Value::String(s)) => Cell::Num(s.trim().parse().map_err(|_| bad())?),
            Some(_) => return Err(bad()),
        },
        ColType::Date => match v {
            None | Some(Value::Null) => Cell::Date(None),
            Some(Value::String(s)) if s.is_empty() || s.starts_with("0000-00-00") => {
                Cell::Date(None)
            }
            Some(Value::String(s)) => Cell::Date(Some(
                NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
                    .map_err(|_| bad())?,
            )),
            Some(_) => return Err(bad()),
        },
        ColType::RowVersion => Cell::Rv(0),
    })
}
