//! Shared setup: a fresh "stack" on the moto that `tests/run` started (random table, queue and
//! secret names, so tests never see each other's data), the three simulators in-process, and a
//! stand-in for Lambda's SQS event source mapping.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use chrono::NaiveDate;
use mlc_aws::{create_fifo_queues, create_tables, AwsContext, QueueUrls, TableNames};
use mlc_core::config::ConnectorConfig;
use mlc_core::secret::{SecretRef, SecretString};
use mlc_core::{Entity, FixedClock, Record};
use mlc_engine::derive::{add_derived, record_key};
use mlc_lambda::{sink_handler, LambdaContext, Ports, Target};
use serde_json::{json, Value};
use sim_monday::{MondayHandle, MondayOptions, MondaySim};
use sim_salesforce::{OrgHandle, OrgOptions, OrgSim};
use sim_syspro::{CompanyCounts, SimHandle, SimOptions, SysproSim};

pub const SF_FLOW: &str = "acme-sf";
pub const MONDAY_FLOW: &str = "globex-mon";
pub const SUPPLIER_BOARD: &str = "5001";
pub const AP_BOARD: &str = "5002";
pub const PO_BOARD: &str = "5003";
const OPERATOR: &str = "MLCONNECT";
const SYSPRO_PASSWORD: &str = "test-odata-password";
const SF_CLIENT_ID: &str = "test-client-id";
const SF_CLIENT_SECRET: &str = "test-client-secret";
const MONDAY_TOKEN: &str = "test-monday-token";
/// Redrive after this many receives (as the CLI: max_attempts + 4).
pub const MAX_RECEIVE_COUNT: u32 = 12;

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

pub fn today() -> NaiveDate {
    SimOptions::default().today
}

/// Tables, two FIFO queue pairs and one JSON secret on moto.
pub struct Stack {
    pub aws: AwsContext,
    pub tables: TableNames,
    pub salesforce: QueueUrls,
    pub monday: QueueUrls,
    /// Secrets Manager name of the JSON secret holding every credential.
    pub secret: String,
}

impl Stack {
    /// Panics (a failure, not a skip) when `MLC_TEST_AWS_ENDPOINT` is unset.
    pub async fn new() -> Stack {
        let aws = AwsContext::for_tests().await;
        let prefix = unique("mlcl");
        let tables = TableNames::with_prefix(&prefix);
        create_tables(&aws, &tables)
            .await
            .unwrap_or_else(|e| panic!("creating tables on moto: {e}"));
        let mut urls = Vec::new();
        for d in ["salesforce", "monday"] {
            urls.push(
                create_fifo_queues(
                    &aws,
                    &format!("{prefix}-{d}"),
                    MAX_RECEIVE_COUNT,
                    // As the IaC (6 × the sink timeout): far longer than any retry delay, so a
                    // message that comes back early proves the delay was set on it.
                    Duration::from_secs(300),
                )
                .await
                .unwrap_or_else(|e| panic!("creating queues on moto: {e}")),
            );
        }
        let monday = urls.pop().unwrap();
        let salesforce = urls.pop().unwrap();
        let secret = format!("{prefix}/credentials");
        aws.secrets()
            .create_secret()
            .name(&secret)
            .secret_string(
                json!({
                    "syspro_password": SYSPRO_PASSWORD,
                    "sf_client_id": SF_CLIENT_ID,
                    "sf_client_secret": SF_CLIENT_SECRET,
                    "monday_token": MONDAY_TOKEN,
                })
                .to_string(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating the secret on moto: {e:?}"));
        Stack {
            aws,
            tables,
            salesforce,
            monday,
            secret,
        }
    }

    pub fn ports(&self) -> Ports {
        Ports::aws(
            &self.aws,
            self.tables.clone(),
            self.salesforce.clone(),
            self.monday.clone(),
            Some(30),
        )
    }

    pub fn urls(&self, target: Target) -> &QueueUrls {
        match target {
            Target::Salesforce => &self.salesforce,
            Target::Monday => &self.monday,
        }
    }

    /// Messages in a queue, visible, delayed or in flight (moto's counts are exact).
    pub async fn count(&self, url: &str) -> u64 {
        use QueueAttributeName as A;
        let out = self
            .aws
            .sqs()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(A::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetQueueAttributes: {e:?}"));
        out.attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0)
    }

    /// The secret values keyed by the references the flows file uses (for the local path).
    pub fn secret_values(&self) -> Vec<(SecretRef, SecretString)> {
        [
            ("syspro_password", SYSPRO_PASSWORD),
            ("sf_client_id", SF_CLIENT_ID),
            ("sf_client_secret", SF_CLIENT_SECRET),
            ("monday_token", MONDAY_TOKEN),
        ]
        .into_iter()
        .map(|(k, v)| {
            (
                SecretRef::SecretsManager {
                    id: self.secret.clone(),
                    json_key: Some(k.to_string()),
                },
                SecretString::from(v.to_string()),
            )
        })
        .collect()
    }
}

/// The three simulators.
pub struct Sims {
    pub syspro: SimHandle,
    pub salesforce: OrgHandle,
    pub monday: MondayHandle,
}

fn status_settings(labels: &[&str]) -> Value {
    let m: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), Value::String((*l).to_string())))
        .collect();
    json!({ "labels": m })
}

impl Sims {
    pub async fn start(counts: CompanyCounts, seed: u64) -> Sims {
        let syspro = SysproSim::start(SimOptions {
            seed,
            counts,
            company_id: "ACME".into(),
            operators: vec![(OPERATOR.into(), SYSPRO_PASSWORD.into())],
            ..SimOptions::default()
        })
        .await
        .unwrap_or_else(|e| panic!("starting sim-syspro: {e}"));
        let salesforce = OrgSim::start(OrgOptions {
            client_id: SF_CLIENT_ID.into(),
            client_secret: SF_CLIENT_SECRET.into(),
            ..OrgOptions::default()
        })
        .await
        .unwrap_or_else(|e| panic!("starting sim-salesforce: {e}"));
        let monday = MondaySim::start(MondayOptions {
            tokens: vec![MONDAY_TOKEN.into()],
            ..MondayOptions::default()
        })
        .await;
        let text = |id: &'static str, title: &'static str| (id, title, "text", Value::Null);
        monday.create_board(
            SUPPLIER_BOARD,
            "Suppliers",
            &[
                text("syspro_id", "SYSPRO ID"),
                text("supplier_name", "Supplier"),
                ("balance", "Balance", "numbers", Value::Null),
            ],
        );
        monday.create_board(
            AP_BOARD,
            "AP invoices",
            &[
                text("syspro_id", "SYSPRO ID"),
                text("supplier", "Supplier"),
                ("amount", "Amount", "numbers", Value::Null),
                ("due", "Due", "date", Value::Null),
                (
                    "status",
                    "Status",
                    "status",
                    status_settings(&["open", "overdue", "paid", "removed"]),
                ),
            ],
        );
        monday.create_board(
            PO_BOARD,
            "Purchase orders",
            &[
                text("syspro_id", "SYSPRO ID"),
                text("supplier", "Supplier"),
                (
                    "status",
                    "Status",
                    "status",
                    status_settings(&["open", "complete", "cancelled", "unknown", "removed"]),
                ),
            ],
        );
        Sims {
            syspro,
            salesforce,
            monday,
        }
    }

    /// Flows for both destinations; credentials are Secrets Manager references.
    pub fn flows_toml(&self, secret: &str) -> String {
        let terms: Vec<String> = self
            .syspro
            .terms_days()
            .iter()
            .map(|(k, v)| format!("{:?} = {v}", k.trim()))
            .collect();
        format!(
            r#"
[[flows]]
id = "{SF_FLOW}"
timezone = "Africa/Johannesburg"
[flows.syspro]
base_url = "{syspro}"
company = "ACME"
auth = "basic"
operator = "{OPERATOR}"
password = "secretsmanager:{secret}#syspro_password"
terms_days = {{ {terms} }}
[[flows.entities]]
entity = "ArCustomer"
change_detection = "rowversion"
[flows.entities.mapping]
Name = {{ from = "Name", trim = true }}
Phone = {{ from = "Telephone", trim = true }}
[[flows.entities]]
entity = "ArInvoice"
change_detection = "open-items"
[flows.entities.mapping]
Amount = {{ from = "CurrencyValue", type = "number" }}
[flows.destination]
kind = "salesforce"
my_domain_url = "{sf}"
client_id = "secretsmanager:{secret}#sf_client_id"
client_secret = "secretsmanager:{secret}#sf_client_secret"
aging_field = "SYSPRO_Aging__c"
balance_field = "SYSPRO_Balance__c"
stage_map = {{ open = "Proposal/Price Quote", overdue = "Negotiation/Review", paid = "Closed Won", removed = "Closed Lost" }}

[[flows]]
id = "{MONDAY_FLOW}"
timezone = "Africa/Johannesburg"
[flows.syspro]
base_url = "{syspro}"
company = "ACME"
auth = "basic"
operator = "{OPERATOR}"
password = "secretsmanager:{secret}#syspro_password"
[[flows.entities]]
entity = "ApSupplier"
change_detection = "full-scan"
[flows.entities.mapping]
supplier_name = {{ from = "SupplierName", trim = true, column_type = "text" }}
balance = {{ from = "CurrentBalance", type = "number", column_type = "numbers" }}
[flows.entities.monday]
board_id = "{SUPPLIER_BOARD}"
item_name = "{{SupplierName}}"
id_column = "syspro_id"
[[flows.entities]]
entity = "ApInvoice"
change_detection = "open-items"
[flows.entities.mapping]
supplier = {{ from = "Supplier.SupplierName", column_type = "text" }}
amount = {{ from = "OrigInvValue", type = "number", column_type = "numbers" }}
due = {{ from = "_DueDate", type = "date", column_type = "date" }}
status = {{ from = "_Status", column_type = "status" }}
[flows.entities.monday]
board_id = "{AP_BOARD}"
item_name = "{{Invoice}} · {{Supplier.SupplierName}}"
id_column = "syspro_id"
[[flows.entities]]
entity = "PorMasterHdr"
change_detection = "rowversion"
[flows.entities.mapping]
supplier = {{ from = "Supplier", trim = true, column_type = "text" }}
status = {{ from = "_Status", column_type = "status" }}
[flows.entities.monday]
board_id = "{PO_BOARD}"
item_name = "PO {{PurchaseOrder}}"
id_column = "syspro_id"
[flows.destination]
kind = "monday"
api_url = "{monday}"
token = "secretsmanager:{secret}#monday_token"
mutations_per_board_per_minute = 10000
timeout_secs = 10
"#,
            syspro = self.syspro.base_url(),
            terms = terms.join(", "),
            sf = self.salesforce.url(),
            monday = self.monday.url(),
        )
    }

    pub fn config(&self, secret: &str) -> ConnectorConfig {
        mlc_config::parse("flows.toml", &self.flows_toml(secret))
            .unwrap_or_else(|e| panic!("test flows do not validate:\n{e}"))
    }
}

/// A container's context over `ports`, with the business date pinned.
pub fn context(config: ConnectorConfig, ports: Ports) -> LambdaContext {
    LambdaContext::new(config, ports, Arc::new(FixedClock::today(today())))
        .unwrap_or_else(|e| panic!("building the lambda context: {e}"))
}

/// What the stand-in event source mapping did.
#[derive(Debug, Default, Clone)]
pub struct Delivered {
    /// Lambda invocations (events of at most 10 messages).
    pub invocations: usize,
    /// Messages handed to the handler.
    pub messages: usize,
    /// Messages reported in `batchItemFailures`.
    pub failures: usize,
    /// Largest event.
    pub largest_event: usize,
}

/// One SQS Lambda event from received messages, in the shape Lambda sends.
pub fn lambda_event(queue_url: &str, msgs: &[aws_sdk_sqs::types::Message]) -> SqsEvent {
    let name = queue_url.rsplit('/').next().unwrap_or_default();
    let records: Vec<Value> = msgs
        .iter()
        .map(|m| {
            let attrs: BTreeMap<String, String> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attrs,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{name}"),
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records }))
        .unwrap_or_else(|e| panic!("building an SqsEvent: {e}"))
}

/// Receives up to 10 messages with the system attributes a FIFO event source passes.
pub async fn receive(stack: &Stack, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    stack
        .aws
        .sqs()
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(60)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ReceiveMessage: {e:?}"))
        .messages()
        .to_vec()
}

/// Does what Lambda's event source mapping does: receive at most 10 messages, invoke the
/// handler, delete the messages not listed as failures. Until the queue has nothing visible or
/// delayed (messages handed back with a delay are waited for, up to `max_wait`).
pub async fn deliver(
    ctx: &LambdaContext,
    stack: &Stack,
    target: Target,
    max_wait: Duration,
) -> Delivered {
    let url = stack.urls(target).main.clone();
    let mut out = Delivered::default();
    let started = std::time::Instant::now();
    loop {
        let msgs = receive(stack, &url).await;
        if msgs.is_empty() {
            if stack.count(&url).await == 0 || started.elapsed() > max_wait {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        out.invocations += 1;
        out.messages += msgs.len();
        out.largest_event = out.largest_event.max(msgs.len());
        let event = lambda_event(&url, &msgs);
        let response: SqsBatchResponse = sink_handler(ctx, target, event).await;
        out.failures += response.batch_item_failures.len();
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for m in &msgs {
            if failed.contains(&m.message_id().unwrap_or_default()) {
                continue;
            }
            stack
                .aws
                .sqs()
                .delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .unwrap_or_else(|e| panic!("DeleteMessage: {e:?}"));
        }
    }
}

/// How the destinations compare with the source.
#[derive(Debug, Default)]
pub struct Convergence {
    pub accounts: usize,
    pub opportunities: usize,
    pub items: BTreeMap<&'static str, usize>,
    pub problems: Vec<String>,
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Every customer has exactly one Account, every open invoice exactly one Opportunity, every
/// supplier / PO / open AP invoice exactly one item; no key has two records anywhere.
/// `skip` lists keys allowed to be missing (dead-lettered on purpose).
pub fn convergence(sims: &Sims, config: &ConnectorConfig, skip: &[String]) -> Convergence {
    let mut c = Convergence::default();
    let snap = sims.syspro.snapshot();
    let today = today();
    let check = |what: &str, key: String, required: bool, n: usize, c: &mut Convergence| {
        if n > 1 {
            c.problems.push(format!("{what} {key}: {n} records"));
        } else if n == 0 && required && !skip.contains(&key) {
            c.problems.push(format!("{what} {key}: missing"));
        }
    };

    if let Some(flow) = config.flow(SF_FLOW) {
        let accounts = sims.salesforce.accounts();
        let opps = sims.salesforce.opportunities();
        c.accounts = accounts.len();
        c.opportunities = opps.len();
        let mut by: HashMap<String, usize> = HashMap::new();
        for a in &accounts {
            *by.entry(a.text("SYSPRO_Customer__c").unwrap_or_default())
                .or_default() += 1;
        }
        for row in snap.get("ArCustomer").into_iter().flatten() {
            let Some(k) = record_key(Entity::ArCustomer, row) else {
                continue;
            };
            let n = by.get(&k.id()).copied().unwrap_or(0);
            check("Account", k.id(), true, n, &mut c);
        }
        let mut by: HashMap<String, usize> = HashMap::new();
        for o in &opps {
            *by.entry(o.text("SYSPRO_Invoice__c").unwrap_or_default())
                .or_default() += 1;
        }
        for row in snap.get("ArInvoice").into_iter().flatten() {
            let mut r: Record = row.clone();
            let Some(k) = record_key(Entity::ArInvoice, &r) else {
                continue;
            };
            let open = add_derived(flow, Entity::ArInvoice, &k, &mut r, today);
            let n = by.get(&k.id()).copied().unwrap_or(0);
            check("Opportunity", k.id(), open, n, &mut c);
        }
    }
    if let Some(flow) = config.flow(MONDAY_FLOW) {
        for (board, table, entity) in [
            (SUPPLIER_BOARD, "ApSupplier", Entity::ApSupplier),
            (AP_BOARD, "ApInvoice", Entity::ApInvoice),
            (PO_BOARD, "PorMasterHdr", Entity::PorMasterHdr),
        ] {
            let items = sims.monday.items(board);
            c.items.insert(table_name(table), items.len());
            let mut by: HashMap<String, usize> = HashMap::new();
            for it in &items {
                *by.entry(text(it.values.get("syspro_id"))).or_default() += 1;
            }
            for row in snap.get(table).into_iter().flatten() {
                let mut r: Record = row.clone();
                let Some(k) = record_key(entity, &r) else {
                    continue;
                };
                let open = add_derived(flow, entity, &k, &mut r, today);
                let required = entity != Entity::ApInvoice || open;
                let n = by.get(&k.id()).copied().unwrap_or(0);
                check(table, k.id(), required, n, &mut c);
            }
        }
    }
    c
}

fn table_name(t: &str) -> &'static str {
    match t {
        "ApSupplier" => "ApSupplier",
        "ApInvoice" => "ApInvoice",
        _ => "PorMasterHdr",
    }
}

/// A one-flow (`acme-sf`) flows file a function validates at cold start without contacting any
/// endpoint; `flow_keys` are extra top-level keys of the flow (TOML lines, e.g. `trigger_secret`).
pub fn offline_flows(flow_keys: &str) -> String {
    format!(
        r#"
[[flows]]
id = "{SF_FLOW}"
{flow_keys}
[flows.syspro]
base_url = "http://127.0.0.1:9"
company = "ACME"
operator = "MLC"
password = "secretsmanager:acme/syspro#password"
[[flows.entities]]
entity = "ArInvoice"
change_detection = "open-items"
[flows.entities.mapping]
Amount = {{ from = "CurrencyValue", type = "number" }}
[flows.destination]
kind = "salesforce"
my_domain_url = "http://127.0.0.1:9"
client_id = "secretsmanager:acme/sf#client_id"
client_secret = "secretsmanager:acme/sf#client_secret"
stage_map = {{ open = "Proposal/Price Quote", overdue = "Negotiation/Review", paid = "Closed Won" }}
"#
    )
}
