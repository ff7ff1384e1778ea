//! The demo world: SYSPRO, Salesforce and Monday.com simulators on loopback, a generated
//! company, and a flows file pointing at them.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use mlc_core::secret::{SecretRef, SecretString};
use mlc_core::Clock;
use mlc_embedded::StaticSecrets;
use serde_json::{json, Value};
use sim_monday::{MondayHandle, MondayOptions, MondaySim};
use sim_salesforce::{OrgHandle, OrgOptions, OrgSim};
use sim_syspro::{CompanyCounts, SimHandle, SimOptions, SysproSim};

/// Demo credentials (they only open the local simulators).
pub const SYSPRO_OPERATOR: &str = "MLCONNECT";
const SYSPRO_PASSWORD: &str = "demo-odata-password";
const SF_CLIENT_ID: &str = "demo-client-id";
const SF_CLIENT_SECRET: &str = "demo-client-secret";
const MONDAY_TOKEN: &str = "demo-monday-token";

/// Monday.com boards of the demo.
pub const SUPPLIER_BOARD: &str = "5001";
/// AP invoices board.
pub const AP_BOARD: &str = "5002";
/// Purchase orders board.
pub const PO_BOARD: &str = "5003";

/// Salesforce stages the demo maps statuses to.
pub const STAGES: [(&str, &str); 4] = [
    ("open", "Proposal/Price Quote"),
    ("overdue", "Negotiation/Review"),
    ("paid", "Closed Won"),
    ("removed", "Closed Lost"),
];

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct WorldSize {
    /// Customers.
    pub customers: usize,
    /// AR invoices.
    pub invoices: usize,
    /// Purchase orders.
    pub pos: usize,
    /// Suppliers.
    pub suppliers: usize,
}

/// The running simulators.
pub struct World {
    /// SYSPRO.
    pub syspro: SimHandle,
    /// Salesforce.
    pub salesforce: OrgHandle,
    /// Monday.com.
    pub monday: MondayHandle,
    /// The generated flows file.
    pub config_toml: String,
}

/// The secrets the demo's flows file references.
pub fn secrets() -> StaticSecrets {
    let s = |n: &str| SecretRef::Env(n.to_string());
    StaticSecrets::new([
        (
            s("DEMO_SYSPRO_PASSWORD"),
            SecretString::from(SYSPRO_PASSWORD.to_string()),
        ),
        (
            s("DEMO_SF_CLIENT_ID"),
            SecretString::from(SF_CLIENT_ID.to_string()),
        ),
        (
            s("DEMO_SF_CLIENT_SECRET"),
            SecretString::from(SF_CLIENT_SECRET.to_string()),
        ),
        (
            s("DEMO_MONDAY_TOKEN"),
            SecretString::from(MONDAY_TOKEN.to_string()),
        ),
    ])
}

fn status_settings(labels: &[&str]) -> Value {
    let m: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), Value::String((*l).to_string())))
        .collect();
    json!({ "labels": m })
}

impl World {
    /// Starts the three simulators with a generated company.
    pub async fn start(
        size: WorldSize,
        seed: u64,
        today: NaiveDate,
        clock: Arc<dyn Clock>,
        monday_window: Duration,
    ) -> std::io::Result<World> {
        let counts = CompanyCounts {
            customers: size.customers,
            invoices: size.invoices,
            payments: size.invoices / 10,
            suppliers: size.suppliers,
            ap_invoices: size.pos,
            purchase_orders: size.pos,
        };
        let syspro = SysproSim::start(SimOptions {
            seed,
            counts,
            today,
            company_id: "DEMO".into(),
            operators: vec![(SYSPRO_OPERATOR.into(), SYSPRO_PASSWORD.into())],
            ..SimOptions::default()
        })
        .await?;
        let salesforce = OrgSim::start(OrgOptions {
            client_id: SF_CLIENT_ID.into(),
            client_secret: SF_CLIENT_SECRET.into(),
            ..OrgOptions::default()
        })
        .await?;
        let monday = MondaySim::start(MondayOptions {
            tokens: vec![MONDAY_TOKEN.into()],
            window: monday_window,
            mutations_per_board: Some(40),
            clock,
            ..MondayOptions::default()
        })
        .await;
        let invoice_labels = ["open", "overdue", "paid", "removed"];
        let po_labels = ["open", "complete", "cancelled", "unknown", "removed"];
        monday.create_board(
            SUPPLIER_BOARD,
            "Suppliers",
            &[
                ("syspro_id", "SYSPRO ID", "text", Value::Null),
                ("supplier_name", "Supplier", "text", Value::Null),
                ("balance", "Balance", "numbers", Value::Null),
                ("currency", "Currency", "text", Value::Null),
            ],
        );
        monday.create_board(
            AP_BOARD,
            "AP invoices",
            &[
                ("syspro_id", "SYSPRO ID", "text", Value::Null),
                ("supplier", "Supplier", "text", Value::Null),
                ("amount", "Amount", "numbers", Value::Null),
                ("balance", "Balance", "numbers", Value::Null),
                ("due", "Due", "date", Value::Null),
                (
                    "status",
                    "Status",
                    "status",
                    status_settings(&invoice_labels),
                ),
            ],
        );
        monday.create_board(
            PO_BOARD,
            "Purchase orders",
            &[
                ("syspro_id", "SYSPRO ID", "text", Value::Null),
                ("supplier", "Supplier", "text", Value::Null),
                ("due", "Due", "date", Value::Null),
                ("status", "Status", "status", status_settings(&po_labels)),
            ],
        );
        let config_toml = flows_toml(&syspro, &salesforce, &monday, &syspro.terms_days());
        Ok(World {
            syspro,
            salesforce,
            monday,
            config_toml,
        })
    }

    /// Turns fault injection on in all three simulators.
    pub fn set_faults(&self, rate: f64, seed: u64) {
        if rate > 0.0 {
            self.syspro.set_fault_rate(rate, seed);
            self.salesforce.set_chaos(rate, seed.wrapping_add(1));
            self.monday.set_chaos(rate, seed.wrapping_add(2));
        }
    }

    /// Turns fault injection off.
    pub fn clear_faults(&self) {
        self.syspro.clear_faults();
        self.salesforce.clear_faults();
        self.monday.clear_faults();
    }
}

fn flows_toml(
    syspro: &SimHandle,
    sf: &OrgHandle,
    monday: &MondayHandle,
    terms: &std::collections::BTreeMap<String, u32>,
) -> String {
    let terms: Vec<String> = terms
        .iter()
        .map(|(k, v)| format!("{:?} = {v}", k.trim()))
        .collect();
    let stage_map: Vec<String> = STAGES.iter().map(|(k, v)| format!("{k} = {v:?}")).collect();
    format!(
        r#"# Generated by `ml-connector demo`: two flows against loopback simulators.
# The secrets are references (env:NAME); the demo supplies their values itself.

[settings]
state_path = "state.db"

[[flows]]
id = "demo-sf"
timezone = "Africa/Johannesburg"
schedule = "15m"

[flows.syspro]
base_url = "{syspro}"
company = "DEMO"
auth = "basic"
operator = "{operator}"
password = "env:DEMO_SYSPRO_PASSWORD"
terms_days = {{ {terms} }}

[[flows.entities]]
entity = "ArCustomer"
change_detection = "rowversion"
[flows.entities.mapping]
Name = {{ from = "Name", trim = true }}
Phone = {{ from = "Telephone", trim = true }}
BillingStreet = {{ concat = ["SoldToAddr1", "SoldToAddr2", "SoldToAddr3"], separator = ", " }}
BillingPostalCode = {{ from = "SoldPostalCode", trim = true }}
CurrencyIsoCode = {{ from = "Currency", trim = true }}
SYSPRO_Email__c = {{ from = "Email", trim = true }}
SYSPRO_Credit_Limit__c = {{ from = "CreditLimit", type = "number" }}

[[flows.entities]]
entity = "ArInvoice"
change_detection = "rowversion"
[flows.entities.mapping]
Amount = {{ from = "CurrencyValue", type = "number" }}

[flows.destination]
kind = "salesforce"
my_domain_url = "{sf}"
client_id = "env:DEMO_SF_CLIENT_ID"
client_secret = "env:DEMO_SF_CLIENT_SECRET"
aging_field = "SYSPRO_Aging__c"
balance_field = "SYSPRO_Balance__c"
stage_map = {{ {stage_map} }}

[[flows]]
id = "demo-monday"
timezone = "Africa/Johannesburg"
schedule = "5m"

[flows.syspro]
base_url = "{syspro}"
company = "DEMO"
auth = "basic"
operator = "{operator}"
password = "env:DEMO_SYSPRO_PASSWORD"

[[flows.entities]]
entity = "ApSupplier"
change_detection = "rowversion"
[flows.entities.mapping]
supplier_name = {{ from = "SupplierName", trim = true, column_type = "text" }}
balance = {{ from = "CurrentBalance", type = "number", column_type = "numbers" }}
currency = {{ from = "Currency", trim = true, column_type = "text" }}
[flows.entities.monday]
board_id = "{supplier_board}"
item_name = "{{SupplierName}}"
id_column = "syspro_id"

[[flows.entities]]
entity = "ApInvoice"
change_detection = "rowversion"
[flows.entities.mapping]
supplier = {{ from = "Supplier.SupplierName", column_type = "text" }}
amount = {{ from = "OrigInvValue", type = "number", column_type = "numbers" }}
balance = {{ from = "_Balance", type = "number", column_type = "numbers" }}
due = {{ from = "_DueDate", type = "date", column_type = "date" }}
status = {{ from = "_Status", column_type = "status" }}
[flows.entities.monday]
board_id = "{ap_board}"
item_name = "{{Invoice}} · {{Supplier.SupplierName}}"
id_column = "syspro_id"

[[flows.entities]]
entity = "PorMasterHdr"
change_detection = "rowversion"
[flows.entities.mapping]
supplier = {{ from = "Supplier", trim = true, column_type = "text" }}
due = {{ from = "_DueDate", type = "date", column_type = "date" }}
status = {{ from = "_Status", column_type = "status" }}
[flows.entities.monday]
board_id = "{po_board}"
item_name = "PO {{PurchaseOrder}}"
id_column = "syspro_id"

[flows.destination]
kind = "monday"
api_url = "{monday}"
token = "env:DEMO_MONDAY_TOKEN"
mutations_per_board_per_minute = 40
timeout_secs = 10
"#,
        syspro = syspro.base_url(),
        operator = SYSPRO_OPERATOR,
        terms = terms.join(", "),
        sf = sf.url(),
        stage_map = stage_map.join(", "),
        monday = monday.url(),
        supplier_board = SUPPLIER_BOARD,
        ap_board = AP_BOARD,
        po_board = PO_BOARD,
    )
}
