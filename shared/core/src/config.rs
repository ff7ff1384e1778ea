//! Flow configuration types. `mlc-config` parses TOML into these and validates them with file,
//! line and field; this module only defines the shape and its defaults.
//!
//! A file holds one customer's flows. A flow reads some SYSPRO entities and writes one
//! destination.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::entity::Entity;
use crate::secret::SecretRef;

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Where local state lives and other process-wide settings.
    #[serde(default)]
    pub settings: Settings,
    /// The flows.
    #[serde(default)]
    pub flows: Vec<FlowConfig>,
}

impl ConnectorConfig {
    /// The flow with this id.
    pub fn flow(&self, id: &str) -> Option<&FlowConfig> {
        self.flows.iter().find(|f| f.id == id)
    }
}

/// Process-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Local state: a SQLite file path (relative to the config file). AWS mode ignores it.
    #[serde(default = "default_state_path")]
    pub state_path: String,
    /// Sink attempts a retryable failure gets at least before it may be dead-lettered.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Hours a record keeps being retried after transient failures (5xx, timeouts, lost
    /// answers, throttling), counted from when it was read (or replayed), before it is
    /// dead-lettered with its error chain. Outages shorter than this lose nothing.
    #[serde(default = "default_retry_horizon_hours")]
    pub retry_horizon_hours: u32,
    /// Hours after which a record sent and never applied (lost in flight, a dead letter from an
    /// exhausted retry horizon, one whose queue message expired) is re-sent from state, once
    /// per business date. Longer than `retry_horizon_hours`.
    #[serde(default = "default_resend_unapplied_after_hours")]
    pub resend_unapplied_after_hours: u32,
    /// Largest queue message (bytes). SQS allows 256 KiB; we keep headroom for attributes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Largest number of records in one change batch.
    #[serde(default = "default_max_batch_records")]
    pub max_batch_records: usize,
}

fn default_state_path() -> String {
    ".ml-connector/state.db".to_string()
}
fn default_max_attempts() -> u32 {
    8
}
fn default_retry_horizon_hours() -> u32 {
    24
}
fn default_resend_unapplied_after_hours() -> u32 {
    48
}
fn default_max_message_bytes() -> usize {
    240 * 1024
}
fn default_max_batch_records() -> usize {
    1000
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            state_path: default_state_path(),
            max_attempts: default_max_attempts(),
            retry_horizon_hours: default_retry_horizon_hours(),
            resend_unapplied_after_hours: default_resend_unapplied_after_hours(),
            max_message_bytes: default_max_message_bytes(),
            max_batch_records: default_max_batch_records(),
        }
    }
}

/// One flow: SYSPRO entities → one destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    /// Unique id (`acme-sf`): names schedules, queues' message groups, state and audit.
    pub id: String,
    /// The company's IANA time zone: "today" (overdue, aging) is its local date.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// How often the flow polls (`5m`, `15m`, `1h`, `1d`).
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// The SYSPRO side.
    pub syspro: SysproConnection,
    /// Entities to poll, in order (masters before documents).
    pub entities: Vec<EntityConfig>,
    /// The destination.
    pub destination: Destination,
    /// Secret used to sign on-demand sync triggers for this flow.
    #[serde(default)]
    pub trigger_secret: Option<SecretRef>,
}

fn default_timezone() -> String {
    "UTC".to_string()
}
fn default_schedule() -> String {
    "15m".to_string()
}

impl FlowConfig {
    /// The entity config for `entity`.
    pub fn entity(&self, entity: Entity) -> Option<&EntityConfig> {
        self.entities.iter().find(|e| e.entity == entity)
    }

    /// The destination's short name (`salesforce` / `monday`).
    pub fn destination_name(&self) -> &'static str {
        match self.destination {
            Destination::Salesforce(_) => "salesforce",
            Destination::Monday(_) => "monday",
        }
    }

    /// The company's time zone (validated on load; UTC if unparsable).
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// The FIFO stream (message group) of an event of this entity: one per flow for
    /// Salesforce (Accounts travel ahead of their Opportunities), one per board for Monday.
    pub fn stream_for(&self, entity: Entity) -> String {
        match &self.destination {
            Destination::Salesforce(_) => self.id.clone(),
            Destination::Monday(_) => match self.entity(entity).and_then(|e| e.monday.as_ref()) {
                Some(t) => format!("{}:board:{}", self.id, t.board_id),
                None => format!("{}:{}", self.id, entity),
            },
        }
    }
}

/// How to reach SYSPRO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SysproConnection {
    /// `https://erp.example.com:40001` (plain `http` only for loopback).
    pub base_url: String,
    /// OData service path; the company is appended as a path segment.
    #[serde(default = "default_odata_path")]
    pub odata_path: String,
    /// e.net REST path.
    #[serde(default = "default_enet_path")]
    pub enet_path: String,
    /// Company id.
    pub company: String,
    /// `basic` (OData, no session) or `session` (e.net Logon).
    #[serde(default)]
    pub auth: SysproAuth,
    /// `odata` or `enet` (COMFND business object, for sites without OData).
    #[serde(default)]
    pub read_path: ReadPath,
    /// The operator code.
    pub operator: String,
    /// The operator's (OData or e.net) password.
    pub password: SecretRef,
    /// The company password (e.net sessions), if the company has one.
    #[serde(default)]
    pub company_password: Option<SecretRef>,
    /// Where invoice terms (terms code → days until due) come from: this file's
    /// `terms_days`, or SYSPRO's `TblArTerms` read at every poll (so a terms change in SYSPRO
    /// reaches the invoices' due dates, status and aging).
    #[serde(default)]
    pub terms_source: TermsSource,
    /// Terms code → days until due. With `terms_source = "syspro"`, entries here override
    /// SYSPRO's (terms SYSPRO computes from a fixed day of the month, say).
    #[serde(default)]
    pub terms_days: BTreeMap<String, u32>,
    /// Days until due when a terms code is not in `terms_days`.
    #[serde(default = "default_due_days")]
    pub default_due_days: u32,
    /// Request timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Rows per page (≤ 5,000).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_odata_path() -> String {
    "/SYSPRO8Odata/SYSPROOData".to_string()
}
fn default_enet_path() -> String {
    "/SYSPROWCFService/Rest".to_string()
}
fn default_due_days() -> u32 {
    30
}
fn default_timeout() -> u64 {
    30
}
fn default_page_size() -> u32 {
    5000
}

/// SYSPRO authentication mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SysproAuth {
    /// HTTP Basic with the operator and OData password.
    #[default]
    Basic,
    /// e.net `Logon` session token.
    Session,
}

/// SYSPRO read path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadPath {
    /// OData v4.
    #[default]
    Odata,
    /// e.net `COMFND` query.
    Enet,
}

/// One entity of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityConfig {
    /// The SYSPRO entity.
    pub entity: Entity,
    /// How changes are found.
    pub change_detection: ChangeDetection,
    /// The date column for `date-window`.
    #[serde(default)]
    pub date_field: Option<String>,
    /// Days of overlap for `date-window` (same-day postings, late postings).
    #[serde(default = "default_overlap")]
    pub overlap_days: u32,
    /// Destination field → how to fill it.
    #[serde(default)]
    pub mapping: BTreeMap<String, FieldMapping>,
    /// Salesforce target (object and external-id field), defaults per entity.
    #[serde(default)]
    pub salesforce: Option<SalesforceTarget>,
    /// Monday.com target board.
    #[serde(default)]
    pub monday: Option<MondayTarget>,
    /// Which rows the first read takes (invoices): everything, open items only, or open items
    /// plus everything dated on or after `since`.
    #[serde(default)]
    pub initial_scope: InitialScope,
    /// The first business date `initial_scope = "since"` takes (`YYYY-MM-DD`).
    #[serde(default)]
    pub since: Option<chrono::NaiveDate>,
    /// How often a key-only read looks for records that vanished from SYSPRO and for a
    /// restored database (`rowversion` and `date-window`).
    #[serde(default)]
    pub sweep: Sweep,
    /// Overrides of the entity's status rules (invoices, purchase orders).
    #[serde(default, skip_serializing_if = "StatusRules::is_default")]
    pub status_rules: StatusRules,
}

/// How an entity's derived status is decided, where a company differs from the defaults
/// (AR invoices due by terms, credit notes never overdue, AP invoices due by `DueDate`, purchase
/// orders by `OrderStatus` 9 complete, `*` cancelled, anything else open).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRules {
    /// A date column that holds the due date (invoices), instead of terms (AR) or `DueDate`
    /// (AP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date_from: Option<String>,
    /// AR credit notes fall overdue like invoices (default: never; a credit note owes the
    /// customer).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub credit_notes_fall_overdue: bool,
    /// Purchase orders: `OrderStatus` code → status label, for the codes listed (the others
    /// keep the defaults). The label `open` marks an open order.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub order_status: BTreeMap<String, String>,
}

impl StatusRules {
    /// True when nothing is overridden.
    pub fn is_default(&self) -> bool {
        self == &StatusRules::default()
    }
}

fn default_overlap() -> u32 {
    3
}

/// Where invoice terms come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TermsSource {
    /// `terms_days` in the flows file.
    #[default]
    FlowsFile,
    /// SYSPRO's `TblArTerms.DueDays`, read at every poll; `terms_days` overrides.
    Syspro,
}

/// The rows an entity's first read takes. Rows left out are counted and reported, and come in
/// later only if SYSPRO changes them after go-live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InitialScope {
    /// Every row: paid invoices too.
    #[default]
    All,
    /// Rows with a balance.
    Open,
    /// Rows with a balance, and every row dated on or after `since`.
    Since,
}

impl InitialScope {
    /// The name in the flows file.
    pub fn as_str(self) -> &'static str {
        match self {
            InitialScope::All => "all",
            InitialScope::Open => "open",
            InitialScope::Since => "since",
        }
    }
}

/// How often the key sweep runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sweep {
    /// At the first poll of each business date.
    #[default]
    Daily,
    /// At every poll (small tables).
    EveryPoll,
    /// Never.
    Off,
}

/// Change-detection strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeDetection {
    /// `TimeStamp gt watermark`: exact.
    Rowversion,
    /// `{date_field} ge watermark − overlap`, hash-diffed.
    DateWindow,
    /// Rows with a balance, plus keys open last time that vanished.
    OpenItems,
    /// Read everything, hash-diffed (small master tables).
    FullScan,
}

/// How one destination field is filled.
// Config values exist once per mapped field: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldMapping {
    /// Shorthand: a source field copied as is.
    Field(String),
    /// The full form.
    Rule(MappingRule),
}

/// A mapping rule: one source (field, concat, template or constant), whose fields are first
/// relabelled by `labels`, then transforms in order: trim → map → default → type conversion →
/// round → max_len. The reference is `docs/mapping.md`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRule {
    /// A source field.
    #[serde(default)]
    pub from: Option<String>,
    /// Several source fields joined by `separator`.
    #[serde(default)]
    pub concat: Option<Vec<String>>,
    /// Separator for `concat` (default one space); empty parts are skipped.
    #[serde(default)]
    pub separator: Option<String>,
    /// A template with `{Field}` placeholders.
    #[serde(default)]
    pub template: Option<String>,
    /// A constant.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// Labels for source fields the rule reads: source field → (value → label). A field's
    /// value, trimmed, is replaced by its label before `from`, `concat` or `template` uses it
    /// (`DocumentType`: `C` → `Credit note`); a blank value stays blank; a value with no entry
    /// is an error naming the value and the known ones.
    // Left out when unset, so the fingerprint of a rule without labels (which re-sends every
    // record of the entity when it changes) is the one it had before labels existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Trim blanks (SYSPRO pads char columns).
    #[serde(default)]
    pub trim: bool,
    /// Value map (e.g. status → stage or label); unmapped values are an error.
    #[serde(default)]
    pub map: Option<BTreeMap<String, String>>,
    /// Used when the source is empty or missing.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    /// Conversion: `text`, `number`, `date`, `bool`.
    #[serde(default, rename = "type")]
    pub kind: Option<ValueKind>,
    /// Truncate text to this many characters.
    #[serde(default)]
    pub max_len: Option<usize>,
    /// Round a number half-up (away from zero on a tie) to this many decimals, as a decimal.
    #[serde(default)]
    pub round: Option<u32>,
    /// Monday.com column type this mapping writes (checked against the board).
    #[serde(default)]
    pub column_type: Option<String>,
}

/// Value conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// A string.
    Text,
    /// A number (space-padded SYSPRO decimals parsed).
    Number,
    /// A business date `YYYY-MM-DD`, taken as written.
    Date,
    /// A boolean (`Y`/`N`, `true`/`false`).
    Bool,
}

/// The destination of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Destination {
    /// Salesforce.
    Salesforce(SalesforceConnection),
    /// Monday.com.
    Monday(MondayConnection),
}

/// How to reach a Salesforce org.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConnection {
    /// The org's My Domain (`https://acme.my.salesforce.com`): the token endpoint's host.
    pub my_domain_url: String,
    /// Override of the `instance_url` the token response gives (rarely needed).
    #[serde(default)]
    pub instance_url: Option<String>,
    /// API version, `v62.0` by default, never below `v46.0`.
    #[serde(default = "default_sf_version")]
    pub api_version: String,
    /// Connected app consumer key.
    pub client_id: SecretRef,
    /// Connected app consumer secret.
    pub client_secret: SecretRef,
    /// Refresh the token proactively after this many minutes (the org's session timeout).
    #[serde(default = "default_session_minutes")]
    pub session_timeout_minutes: u64,
    /// Invoice status → Opportunity stage (keys `open`, `overdue`, `paid`, `removed`).
    #[serde(default)]
    pub stage_map: BTreeMap<String, String>,
    /// Opportunity field that receives the aging bucket, if any.
    #[serde(default)]
    pub aging_field: Option<String>,
    /// Opportunity field that receives the open balance, if any.
    #[serde(default)]
    pub balance_field: Option<String>,
    /// Opportunity name template.
    #[serde(default = "default_opp_name")]
    pub opportunity_name: String,
    /// Sink passes with more records than this go through Bulk API 2.0 (default 5,000: below
    /// that, Composite costs fewer calls).
    #[serde(default = "default_bulk_threshold")]
    pub bulk_threshold: usize,
    /// Share of the daily API allowance left for the org's other integrations (percent).
    #[serde(default = "default_reserve")]
    pub daily_reserve_percent: u8,
    /// Send the parent Account as a nested external-id reference inside Collections (not
    /// confirmed by Salesforce's docs; off by default).
    #[serde(default)]
    pub nested_account_reference: bool,
    /// Request timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// The column an Opportunity's `Amount` comes from unless the flow maps `Amount` itself.
pub const OPPORTUNITY_AMOUNT_FROM: &str = "CurrencyValue";

fn default_sf_version() -> String {
    "v62.0".to_string()
}
fn default_session_minutes() -> u64 {
    120
}
fn default_opp_name() -> String {
    "INV {Invoice} · {Customer.Name}".to_string()
}
fn default_bulk_threshold() -> usize {
    // A Bulk API 2.0 job costs about six calls (create, upload, close, status, results) and a
    // Composite request carries 1,000 records in one: Bulk pays from about 6,000 records a pass.
    5000
}
fn default_reserve() -> u8 {
    20
}

/// Salesforce object for an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceTarget {
    /// sObject (`Account`, `Opportunity`).
    pub object: String,
    /// External-id field carrying the SYSPRO key.
    pub external_id_field: String,
}

/// How to reach Monday.com.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MondayConnection {
    /// API URL, `https://api.monday.com/v2` by default.
    #[serde(default = "default_monday_url")]
    pub api_url: String,
    /// Pinned `API-Version`.
    #[serde(default = "default_monday_version")]
    pub api_version: String,
    /// Personal or OAuth token.
    pub token: SecretRef,
    /// Mutations per minute per board (the figure promised to customers).
    #[serde(default = "default_board_cap")]
    pub mutations_per_board_per_minute: u32,
    /// Requests per minute allowed by the account's plan.
    #[serde(default = "default_rpm")]
    pub requests_per_minute: u32,
    /// Request timeout in seconds.
    #[serde(default = "default_monday_timeout")]
    pub timeout_secs: u64,
}

fn default_monday_url() -> String {
    "https://api.monday.com/v2".to_string()
}
fn default_monday_version() -> String {
    "2026-10".to_string()
}
fn default_board_cap() -> u32 {
    40
}
fn default_rpm() -> u32 {
    1000
}
fn default_monday_timeout() -> u64 {
    60
}

/// Monday.com board for an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MondayTarget {
    /// Board id.
    pub board_id: String,
    /// Group for new items.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Item name template (`{Invoice} · {SupplierName}`).
    pub item_name: String,
    /// Column holding the SYSPRO id (dedupe).
    pub id_column: String,
}
