//! Invoice terms read from SYSPRO itself: with `terms_source = "syspro"`, every poll reads
//! `TblArTerms` (a small table: one row per terms code) and derives due dates from its
//! `DueDays`, the flows file's `terms_days` overriding. The terms become part of the
//! invoices' destination fingerprint, so a terms change in SYSPRO re-reads the invoices once
//! and every due date, status and aging bucket follows it.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlc_core::config::{FlowConfig, TermsSource};
use mlc_core::money;
use mlc_core::ports::Source;
use mlc_core::query::SourceQuery;
use mlc_core::Entity;
use serde_json::Value;

use crate::error::{EngineError, Result};

/// The flow as a poll derives it: `terms_days` from SYSPRO's `TblArTerms` when the flow says
/// so (and reads invoices), else the flow as configured.
pub async fn effective_flow(
    flow: &Arc<FlowConfig>,
    source: &dyn Source,
) -> Result<Arc<FlowConfig>> {
    if flow.syspro.terms_source != TermsSource::Syspro || flow.entity(Entity::ArInvoice).is_none() {
        return Ok(flow.clone());
    }
    let mut terms = read_terms(flow, source).await?;
    terms.extend(flow.syspro.terms_days.clone());
    let mut f = (**flow).clone();
    f.syspro.terms_days = terms;
    Ok(Arc::new(f))
}

async fn read_terms(flow: &FlowConfig, source: &dyn Source) -> Result<BTreeMap<String, u32>> {
    let q = SourceQuery {
        entity: Entity::TblArTerms,
        fields: vec!["TermsCode".into(), "DueDays".into()],
        filter: None,
        page_size: flow.syspro.page_size,
    };
    let err = |source| EngineError::Source {
        flow: flow.id.clone(),
        entity: Entity::TblArTerms.to_string(),
        source,
    };
    let mut terms = BTreeMap::new();
    let mut cursor = None;
    loop {
        let page = source.read_page(&q, cursor.as_ref()).await.map_err(err)?;
        for row in &page.rows {
            let Some(code) = row.get("TermsCode").and_then(Value::as_str) else {
                continue;
            };
            let days = due_days(row.get("DueDays")).ok_or_else(|| EngineError::SourceData {
                flow: flow.id.clone(),
                message: format!(
                    "TblArTerms {:?}: column DueDays value {}: is not a whole number of days from 0 to 9999",
                    code.trim_end(),
                    row.get("DueDays").map_or_else(|| "null".to_string(), Value::to_string)
                ),
            })?;
            terms.insert(code.trim().to_string(), days);
        }
        match page.next {
            Some(n) => cursor = Some(n),
            None => return Ok(terms),
        }
    }
}

/// `DueDays` as days: a whole, non-negative number (SYSPRO decimal(4,0)).
fn due_days(v: Option<&Value>) -> Option<u32> {
    let d = money::decimal(v).ok()??;
    if d.fract().is_zero() && !d.is_sign_negative() {
        u32::try_from(d.mantissa() / 10i128.pow(d.scale())).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn due_days_are_whole_days() {
        assert_eq!(due_days(Some(&json!(30))), Some(30));
        assert_eq!(due_days(Some(&json!("45 "))), Some(45));
        assert_eq!(due_days(Some(&json!(30.0))), Some(30));
        assert_eq!(due_days(Some(&json!(7.5))), None);
        assert_eq!(due_days(Some(&json!(-1))), None);
        assert_eq!(due_days(None), None);
    }
}
