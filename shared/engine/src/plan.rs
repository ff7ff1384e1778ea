//! What one poll of one entity reads, and where its watermark goes next: the change filter
//! from the strategy and the stored mark, the initial scope on the first read (and as a guard
//! on rows older than go-live afterwards), and the watermark's next value, with dates past
//! today + a tolerance never adopted.

use std::collections::HashSet;

use chrono::{Days, NaiveDate};
use mlc_core::config::{ChangeDetection, EntityConfig};
use mlc_core::invoice::parse_business_date;
use mlc_core::query::{Filter, Literal, Op};
use mlc_core::watermark::GoLive;
use mlc_core::{Record, WatermarkValue};
use serde_json::Value;

use crate::derive::{balance_field, record_key};
use crate::scope::{scope_date_column, ScopeFilters};

/// Days past today a date-window watermark may go: a row dated further ahead is a data
/// problem (reported), not a position to read from.
pub const FUTURE_TOLERANCE_DAYS: u64 = 1;

/// The inputs of one entity's read.
pub struct ReadPlan<'a> {
    /// The entity's settings.
    pub ec: &'a EntityConfig,
    /// The strategy in force (rowversion falls back to a full scan without `TimeStamp`).
    pub strategy: ChangeDetection,
    /// The stored mark.
    pub mark: &'a WatermarkValue,
    /// Read every row (mapping changed, restore detected, resync).
    pub whole: bool,
    /// The initial scope, when narrower than every row.
    pub scope: Option<ScopeFilters>,
    /// The first read under that scope, once it happened.
    pub go_live: Option<&'a GoLive>,
    /// The business date.
    pub today: NaiveDate,
}

impl ReadPlan<'_> {
    /// The entity's first read.
    pub fn first(&self) -> bool {
        matches!(self.mark, WatermarkValue::Empty)
    }

    /// True when this read takes every open row anyway (no calendar pass needed).
    pub fn reads_every_open_row(&self) -> bool {
        self.whole
            || self.first()
            || matches!(
                self.strategy,
                ChangeDetection::OpenItems | ChangeDetection::FullScan
            )
    }

    /// The rowversion bound child tables are asked from (rowversion reads of part of the
    /// entity only).
    pub fn child_bound(&self, no_children: bool) -> Option<u64> {
        if self.whole || no_children || self.strategy != ChangeDetection::Rowversion {
            return None;
        }
        match self.mark {
            WatermarkValue::RowVersionLagged { bound, .. } => Some(*bound),
            WatermarkValue::RowVersion(v) => Some(*v),
            _ => None,
        }
    }

    fn bound(&self) -> Option<u64> {
        match self.mark {
            WatermarkValue::RowVersionLagged { bound, .. } => Some(*bound),
            WatermarkValue::RowVersion(v) => Some(*v),
            _ => None,
        }
    }
}

/// The filter of the read: the strategy's change filter, and the scope.
pub fn change_filter(plan: &ReadPlan<'_>) -> Option<Filter> {
    let ec = plan.ec;
    let base = if plan.whole || plan.first() {
        None
    } else {
        match (plan.strategy, plan.mark) {
            (ChangeDetection::Rowversion, _) => plan
                .bound()
                .map(|b| Filter::cmp("TimeStamp", Op::Gt, Literal::RowVersion(b))),
            (ChangeDetection::DateWindow, WatermarkValue::Date(d)) => Some(Filter::cmp(
                date_field(ec),
                Op::Ge,
                Literal::Date(window_start(ec, *d)),
            )),
            (ChangeDetection::OpenItems, _) => {
                balance_field(ec.entity).map(|f| Filter::cmp(f, Op::Ne, Literal::Num(0.0)))
            }
            _ => None,
        }
    };
    let scope = match (&plan.scope, plan.first(), plan.go_live) {
        (Some(s), true, _) => Some(s.take.clone()),
        (Some(s), false, Some(g)) => guard(plan, s, g),
        _ => None,
    };
    match (base, scope) {
        (Some(a), Some(b)) => Some(Filter::And(vec![a, b])),
        (a, b) => a.or(b),
    }
}

/// After go-live, rows no newer than it keep to the scope: a rowversion (or date) guard,
/// dropped once the read starts past go-live anyway.
fn guard(plan: &ReadPlan<'_>, s: &ScopeFilters, g: &GoLive) -> Option<Filter> {
    let newer = match (plan.strategy, g.row_version) {
        (ChangeDetection::Rowversion, Some(rv)) => {
            if !plan.whole && plan.bound().is_some_and(|b| b >= rv) {
                return None;
            }
            Filter::cmp("TimeStamp", Op::Gt, Literal::RowVersion(rv))
        }
        (ChangeDetection::OpenItems, _) if !plan.whole => return None,
        _ => {
            if let (false, WatermarkValue::Date(d)) = (plan.whole, plan.mark) {
                if window_start(plan.ec, *d) > g.date {
                    return None;
                }
            }
            let col = scope_date_column(plan.ec).to_string();
            Filter::cmp(col, Op::Gt, Literal::Date(g.date))
        }
    };
    Some(Filter::Or(vec![s.take.clone(), newer]))
}

fn date_field(ec: &EntityConfig) -> String {
    ec.date_field.clone().unwrap_or_default()
}

fn window_start(ec: &EntityConfig, d: NaiveDate) -> NaiveDate {
    d.checked_sub_days(Days::new(u64::from(ec.overlap_days)))
        .unwrap_or(d)
}

/// What the rows of one poll said about the watermark.
#[derive(Debug, Default)]
pub struct Tally {
    /// The highest rowversion read.
    pub max_rv: Option<u64>,
    /// The latest date read, within tolerance.
    pub max_date: Option<NaiveDate>,
    /// Rows dated past today + tolerance: (key, date).
    pub future: Vec<(String, NaiveDate)>,
    /// Identities staged by this poll.
    pub seen: HashSet<String>,
    /// Identities staged open by this poll.
    pub open: HashSet<String>,
}

impl Tally {
    /// Takes the rowversions and dates of a page of rows.
    pub fn observe(
        &mut self,
        ec: &EntityConfig,
        strategy: ChangeDetection,
        rows: &[Record],
        today: NaiveDate,
    ) {
        let limit = today
            .checked_add_days(Days::new(FUTURE_TOLERANCE_DAYS))
            .unwrap_or(today);
        for row in rows {
            if let Some(v) = row.get("TimeStamp").and_then(Value::as_u64) {
                self.max_rv = Some(self.max_rv.map_or(v, |m| m.max(v)));
            }
            let (ChangeDetection::DateWindow, Some(df)) = (strategy, &ec.date_field) else {
                continue;
            };
            let Some(d) = row
                .get(df)
                .and_then(Value::as_str)
                .and_then(parse_business_date)
            else {
                continue;
            };
            if d > limit {
                let key = record_key(ec.entity, row)
                    .map(|k| k.id())
                    .unwrap_or_default();
                self.future.push((key, d));
            } else {
                self.max_date = Some(self.max_date.map_or(d, |m| m.max(d)));
            }
        }
    }

    /// The data problem future-dated rows are, for `status`.
    pub fn future_alert(&self, ec: &EntityConfig) -> Option<String> {
        let (key, d) = self.future.first()?;
        Some(format!(
            "{} row(s) of {} dated after today + {FUTURE_TOLERANCE_DAYS} day(s) in {} (first: {key} on {d}): \
             synced, but the date window does not move past today",
            self.future.len(),
            ec.entity,
            date_field(ec)
        ))
    }
}

/// The watermark after a poll whose batches were all accepted.
pub fn next_value(
    strategy: ChangeDetection,
    mark: &WatermarkValue,
    tally: &Tally,
    rescan: bool,
    today: NaiveDate,
) -> WatermarkValue {
    match strategy {
        ChangeDetection::Rowversion => {
            let prev_seen = match mark {
                _ if rescan => None,
                WatermarkValue::RowVersionLagged { seen, .. } => Some(*seen),
                WatermarkValue::RowVersion(v) => Some(*v),
                _ => None,
            };
            let seen = tally.max_rv.max(prev_seen).unwrap_or(0);
            // Filter next time on the previous poll's high mark (see RowVersionLagged); after
            // a restore, on what this whole read found.
            let bound = if rescan {
                seen
            } else {
                prev_seen.unwrap_or(0).min(seen)
            };
            WatermarkValue::RowVersionLagged { bound, seen }
        }
        ChangeDetection::DateWindow => {
            let prev = match mark {
                WatermarkValue::Date(d) => Some(*d),
                _ => None,
            };
            match tally.max_date.max(prev) {
                Some(d) => WatermarkValue::Date(d),
                None => WatermarkValue::Empty,
            }
        }
        ChangeDetection::OpenItems | ChangeDetection::FullScan => WatermarkValue::Rescanned(today),
    }
}
