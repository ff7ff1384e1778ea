//! `preview_record`: one SYSPRO record prepared exactly as the poll queues it, handed to the
//! sink's preview with its record state; clear errors for unknown entities and keys.

mod common;

use common::*;

use mlc_core::preview::PreviewAction;
use mlc_core::Entity;
use mlc_engine::preview::preview_record;
use mlc_engine::EngineError;
use serde_json::json;

fn new_value<'a>(p: &'a mlc_engine::preview::RecordPreview, field: &str) -> &'a serde_json::Value {
    &p.preview
        .fields
        .iter()
        .find(|f| f.field == field)
        .unwrap_or_else(|| panic!("no {field} in {p:?}"))
        .new
}

#[tokio::test]
async fn preview_shows_the_record_as_the_poll_queues_it() {
    let w = World::new();
    w.seed(2, 4);
    let rt = w.runtime("2026-11-24");
    let key = inv_key(1, 2);

    // Never synced: a create, with the derived fields of "today", found without --entity.
    let p = preview_record(&rt, &w.source, &w.dest, None, &key)
        .await
        .unwrap();
    assert_eq!(
        (p.flow.as_str(), p.entity, p.key.as_str()),
        ("acme-sf", Entity::ArInvoice, key.as_str())
    );
    assert_eq!(p.preview.action, PreviewAction::Create);
    assert_eq!(new_value(&p, "_Status"), &json!("open"));
    assert_eq!(new_value(&p, "_DueDate"), &json!("2026-12-01"));
    assert!(!p.unchanged_since_sent);
    assert!(
        w.dest.0.lock().unwrap().records.is_empty(),
        "preview writes nothing"
    );

    // After a sync the destination holds exactly the previewed record: nothing to write.
    w.sync("2026-11-24").await;
    let after = preview_record(&rt, &w.source, &w.dest, None, &key)
        .await
        .unwrap();
    assert_eq!(after.preview.action, PreviewAction::Nothing, "{after:?}");
    assert_eq!(
        after
            .preview
            .fields
            .iter()
            .map(|f| &f.new)
            .collect::<Vec<_>>(),
        p.preview.fields.iter().map(|f| &f.new).collect::<Vec<_>>()
    );
    assert!(after.unchanged_since_sent);

    // A later "today": the invoice turns overdue without any SYSPRO change.
    let later = preview_record(&w.runtime("2026-12-05"), &w.source, &w.dest, None, &key)
        .await
        .unwrap();
    match &later.preview.action {
        PreviewAction::Update { fields } => assert!(fields.contains(&"_Status".to_string())),
        other => panic!("expected an update, got {other:?}"),
    }
    assert_eq!(new_value(&later, "_Status"), &json!("overdue"));

    // A customer code is a customer, never the customer's invoices; padding as SYSPRO keeps it.
    let c = preview_record(&rt, &w.source, &w.dest, None, "0000001")
        .await
        .unwrap();
    assert_eq!(c.entity, Entity::ArCustomer);
    assert_eq!(c.key, "0000001");
}

#[tokio::test]
async fn preview_names_flow_entity_and_key_when_it_cannot() {
    let w = World::new();
    w.seed(1, 1);
    let rt = w.runtime("2026-11-24");
    let err = preview_record(&rt, &w.source, &w.dest, None, "NOPE")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::RecordNotFound { .. }), "{err}");
    let m = err.to_string();
    assert!(
        m.contains("acme-sf") && m.contains("NOPE") && m.contains("ArCustomer"),
        "{m}"
    );

    // An invoice key needs all its parts: a customer code does not select its invoices.
    let err = preview_record(&rt, &w.source, &w.dest, Some(Entity::ArInvoice), "0000000")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Customer|Invoice|DocumentType"),
        "{err}"
    );

    let err = preview_record(&rt, &w.source, &w.dest, Some(Entity::ApInvoice), "X")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::UnknownEntity { .. }), "{err}");
}
