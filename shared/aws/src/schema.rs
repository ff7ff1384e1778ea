//! The DynamoDB schema: table roles, key attributes, indexes and TTL, as constants the IaC
//! mirrors, plus [`create_tables`] for tests and local stacks.
//!
//! Every key attribute is a string. Billing is on demand. See the crate doc for what lives in
//! each table.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};

use crate::context::AwsContext;
use crate::error::{error_code, sdk_error, Error, Result};

/// Partition key attribute of every table.
pub const PK: &str = "pk";
/// Sort key attribute of every table.
pub const SK: &str = "sk";
/// TTL attribute (epoch seconds) on audit entries and budget counters. Leases never use it:
/// their expiry is `lease_expires_ms`, which DynamoDB must not act on.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Audit index by outcome: partition `outcome` (e.g. `failed-permanent`), sort `sk` (time).
pub const AUDIT_BY_OUTCOME: IndexSpec = IndexSpec {
    name: "by-outcome",
    partition_key: "outcome",
    sort_key: SK,
};
/// Audit index by record key across flows: partition `akey` (the key's identity), sort `sk`.
pub const AUDIT_BY_KEY: IndexSpec = IndexSpec {
    name: "by-key",
    partition_key: "akey",
    sort_key: SK,
};

/// A global secondary index (projection ALL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSpec {
    /// Index name.
    pub name: &'static str,
    /// Partition key attribute (string).
    pub partition_key: &'static str,
    /// Sort key attribute (string).
    pub sort_key: &'static str,
}

/// One table's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// Which table of [`TableNames`] this is.
    pub role: TableRole,
    /// Partition key attribute (string).
    pub partition_key: &'static str,
    /// Sort key attribute (string).
    pub sort_key: &'static str,
    /// Global secondary indexes.
    pub indexes: &'static [IndexSpec],
    /// TTL attribute, when the table has one.
    pub ttl_attribute: Option<&'static str>,
}

/// The tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableRole {
    /// Leases, run info, pauses, watermarks, budget counters.
    Control,
    /// Record state (poll-side and sink-side items).
    Records,
    /// The audit trail.
    Audit,
}

/// Every table, in creation order.
pub const TABLES: [TableSpec; 3] = [
    TableSpec {
        role: TableRole::Control,
        partition_key: PK,
        sort_key: SK,
        indexes: &[],
        ttl_attribute: Some(TTL_ATTRIBUTE),
    },
    TableSpec {
        role: TableRole::Records,
        partition_key: PK,
        sort_key: SK,
        indexes: &[],
        ttl_attribute: None,
    },
    TableSpec {
        role: TableRole::Audit,
        partition_key: PK,
        sort_key: SK,
        indexes: &[AUDIT_BY_OUTCOME, AUDIT_BY_KEY],
        ttl_attribute: Some(TTL_ATTRIBUTE),
    },
];

/// Environment variable naming the control table.
pub const CONTROL_TABLE_ENV: &str = "MLC_CONTROL_TABLE";
/// Environment variable naming the records table.
pub const RECORDS_TABLE_ENV: &str = "MLC_RECORDS_TABLE";
/// Environment variable naming the audit table.
pub const AUDIT_TABLE_ENV: &str = "MLC_AUDIT_TABLE";

/// The names of the tables (set by the IaC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    /// Leases, run info, pauses, watermarks, budget counters.
    pub control: String,
    /// Record state.
    pub records: String,
    /// Audit trail.
    pub audit: String,
}

impl TableNames {
    /// `{prefix}-control`, `{prefix}-records`, `{prefix}-audit`.
    pub fn with_prefix(prefix: &str) -> Self {
        TableNames {
            control: format!("{prefix}-control"),
            records: format!("{prefix}-records"),
            audit: format!("{prefix}-audit"),
        }
    }

    /// From `MLC_CONTROL_TABLE`, `MLC_RECORDS_TABLE`, `MLC_AUDIT_TABLE`.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| Error::Config(format!("environment variable {name} is not set")))
        };
        Ok(TableNames {
            control: var(CONTROL_TABLE_ENV)?,
            records: var(RECORDS_TABLE_ENV)?,
            audit: var(AUDIT_TABLE_ENV)?,
        })
    }

    /// The name of a role's table.
    pub fn name(&self, role: TableRole) -> &str {
        match role {
            TableRole::Control => &self.control,
            TableRole::Records => &self.records,
            TableRole::Audit => &self.audit,
        }
    }
}

fn build_err(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Aws {
        operation: "DynamoDB.CreateTable".into(),
        message: format!("invalid table definition: {e}"),
        transient: false,
        source: Some(Box::new(e)),
    }
}

fn key(attr: &str, kind: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(attr)
        .key_type(kind)
        .build()
        .map_err(build_err)
}

/// Creates the tables of [`TABLES`] (on-demand billing, TTL enabled where specified) and waits
/// until they are active. Existing tables are left as they are. For tests and local stacks:
/// production tables come from the IaC, which mirrors [`TABLES`].
pub async fn create_tables(ctx: &AwsContext, names: &TableNames) -> Result<()> {
    let client = ctx.dynamodb();
    for spec in TABLES {
        let name = names.name(spec.role);
        let mut attrs: Vec<&str> = vec![spec.partition_key, spec.sort_key];
        for ix in spec.indexes {
            for a in [ix.partition_key, ix.sort_key] {
                if !attrs.contains(&a) {
                    attrs.push(a);
                }
            }
        }
        let mut req = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(spec.partition_key, KeyType::Hash)?)
            .key_schema(key(spec.sort_key, KeyType::Range)?);
        for a in attrs {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(a)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build_err)?,
            );
        }
        for ix in spec.indexes {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(ix.name)
                    .key_schema(key(ix.partition_key, KeyType::Hash)?)
                    .key_schema(key(ix.sort_key, KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(build_err)?,
            );
        }
        match req.send().await {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("ResourceInUseException") => continue,
            Err(e) => return Err(sdk_error("DynamoDB.CreateTable", e)),
        }
        wait_active(ctx, name).await?;
        if let Some(ttl) = spec.ttl_attribute {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(ttl)
                        .enabled(true)
                        .build()
                        .map_err(build_err)?,
                )
                .send()
                .await
                .map_err(|e| sdk_error("DynamoDB.UpdateTimeToLive", e))?;
        }
    }
    Ok(())
}

async fn wait_active(ctx: &AwsContext, name: &str) -> Result<()> {
    for _ in 0..120 {
        let out = ctx
            .dynamodb()
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| sdk_error("DynamoDB.DescribeTable", e))?;
        if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(Error::Config(format!(
        "table {name} did not become active within a minute"
    )))
}
