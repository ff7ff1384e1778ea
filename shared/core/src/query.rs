//! What the engine asks a source for. Source adapters translate [`Filter`] into OData `$filter`
//! or an e.net `COMFND` `Where` block, so no adapter splices user values into query text.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::entity::Entity;
use crate::event::Record;

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    /// A string (escaped by the adapter).
    Str(String),
    /// A number.
    Num(f64),
    /// A date-only business date.
    Date(NaiveDate),
    /// A rowversion (compared as big-endian u64).
    RowVersion(u64),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

impl Op {
    /// The OData spelling.
    pub fn odata(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Filter {
    /// `field op literal`
    Cmp {
        /// Column.
        field: String,
        /// Operator.
        op: Op,
        /// Value.
        value: Literal,
    },
    /// All of.
    And(Vec<Filter>),
    /// Any of.
    Or(Vec<Filter>),
}

impl Filter {
    /// `field op value`.
    pub fn cmp(field: impl Into<String>, op: Op, value: Literal) -> Self {
        Filter::Cmp {
            field: field.into(),
            op,
            value,
        }
    }

    /// Matches exactly the given keys (key identities split into parts) of an entity.
    pub fn keys(entity: Entity, keys: &[Vec<String>]) -> Self {
        let fields = entity.key_fields();
        Filter::Or(
            keys.iter()
                .map(|parts| {
                    Filter::And(
                        fields
                            .iter()
                            .zip(parts.iter())
                            .map(|(f, v)| Filter::cmp(*f, Op::Eq, Literal::Str(v.clone())))
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

/// One read of one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceQuery {
    /// The entity.
    pub entity: Entity,
    /// Columns to read (`$select`); key columns are always read.
    pub fields: Vec<String>,
    /// The change-detection filter; `None` reads everything.
    pub filter: Option<Filter>,
    /// Rows per page (≤ 5,000 for OData).
    pub page_size: u32,
}

/// Where the next page starts: opaque to the engine, chosen by the source (a nextLink, a skip
/// count, or the last key for keyset paging).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCursor(pub String);

/// One page of rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourcePage {
    /// The rows, ordered by the full key.
    pub rows: Vec<Record>,
    /// Where the next page starts; `None` when this was the last page.
    pub next: Option<PageCursor>,
}
