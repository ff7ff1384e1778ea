//! An entity's initial scope as filters: which rows the first read takes and which it leaves
//! out (counted and reported, never silently lost). Rows left out come in later only when
//! SYSPRO changes them after go-live.

use chrono::NaiveDate;
use mlc_core::config::{EntityConfig, InitialScope};
use mlc_core::query::{Filter, Literal, Op};
use mlc_core::Entity;

use crate::derive::balance_field;

/// The two sides of a scope.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeFilters {
    /// Rows the scope takes.
    pub take: Filter,
    /// Rows it leaves out.
    pub leave: Filter,
}

/// The date column `since` is compared with.
pub fn scope_date_column(ec: &EntityConfig) -> &str {
    ec.date_field.as_deref().unwrap_or(match ec.entity {
        Entity::ArInvoice | Entity::ApInvoice => "InvoiceDate",
        _ => "",
    })
}

/// The filters of `ec`'s scope; `None` when it takes every row.
pub fn scope_filters(ec: &EntityConfig) -> Option<ScopeFilters> {
    let balance = balance_field(ec.entity)?;
    let open = Filter::cmp(balance, Op::Ne, Literal::Num(0.0));
    let settled = Filter::cmp(balance, Op::Eq, Literal::Num(0.0));
    match (ec.initial_scope, ec.since) {
        (InitialScope::All, _) => None,
        (InitialScope::Open, _) => Some(ScopeFilters {
            take: open,
            leave: settled,
        }),
        (InitialScope::Since, since) => {
            let since: NaiveDate = since?;
            let col = scope_date_column(ec).to_string();
            Some(ScopeFilters {
                take: Filter::Or(vec![
                    open,
                    Filter::cmp(col.clone(), Op::Ge, Literal::Date(since)),
                ]),
                leave: Filter::And(vec![
                    settled,
                    Filter::cmp(col, Op::Lt, Literal::Date(since)),
                ]),
            })
        }
    }
}
