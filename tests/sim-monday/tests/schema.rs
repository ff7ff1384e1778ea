//! The hand-written subset against the official SDL, and every document the connector sends
//! against both. Skips (with the reason printed) when the official schema is absent.

use std::path::PathBuf;

use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::response::serde_json_bytes;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::validation::Valid;
use apollo_compiler::Schema;

fn official_path() -> Option<PathBuf> {
    let base = std::env::var_os("MLC_MONDAY_SCHEMA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/monday-schema")
        });
    let file = if base.is_dir() {
        base.join("schema-2026-10.stripped.graphql")
    } else {
        base
    };
    file.is_file().then_some(file)
}

fn official() -> Option<Valid<Schema>> {
    let Some(p) = official_path() else {
        println!("skipped: official Monday.com schema not found (set MLC_MONDAY_SCHEMA or provide ../shared/monday-schema)");
        return None;
    };
    let text = std::fs::read_to_string(&p).expect("read official schema");
    Some(
        Schema::parse_and_validate(text, p.display().to_string())
            .expect("official schema validates"),
    )
}

#[test]
fn subset_matches_the_official_schema() {
    let Some(full) = official() else { return };
    let sub = sim_monday::subset_schema().expect("subset validates");
    let mut checked = 0;
    for (name, ty) in &sub.types {
        if ty.is_built_in() {
            continue;
        }
        let other = full
            .types
            .get(name)
            .unwrap_or_else(|| panic!("type {name} is not in the official schema"));
        match (ty, other) {
            (ExtendedType::Object(a), ExtendedType::Object(b)) => {
                for (f, def) in &a.fields {
                    let o = b
                        .fields
                        .get(f)
                        .unwrap_or_else(|| panic!("{name}.{f} is not in the official schema"));
                    assert_eq!(def.ty.to_string(), o.ty.to_string(), "{name}.{f} type");
                    for arg in &def.arguments {
                        let oa = o
                            .arguments
                            .iter()
                            .find(|x| x.name == arg.name)
                            .unwrap_or_else(|| panic!("{name}.{f}({}) missing", arg.name));
                        assert_eq!(
                            arg.ty.to_string(),
                            oa.ty.to_string(),
                            "{name}.{f}({}) type",
                            arg.name
                        );
                        checked += 1;
                    }
                    for oa in &o.arguments {
                        assert!(
                            !oa.is_required() || def.arguments.iter().any(|x| x.name == oa.name),
                            "{name}.{f}: required argument {} missing from subset",
                            oa.name
                        );
                    }
                    checked += 1;
                }
                for i in &a.implements_interfaces {
                    assert!(b.implements_interfaces.contains(i), "{name} implements {i}");
                }
            }
            (ExtendedType::Interface(a), ExtendedType::Interface(b)) => {
                for (f, def) in &a.fields {
                    let o = b
                        .fields
                        .get(f)
                        .unwrap_or_else(|| panic!("{name}.{f} is not in the official schema"));
                    assert_eq!(def.ty.to_string(), o.ty.to_string(), "{name}.{f} type");
                    checked += 1;
                }
            }
            (ExtendedType::InputObject(a), ExtendedType::InputObject(b)) => {
                for (f, def) in &a.fields {
                    let o = b
                        .fields
                        .get(f)
                        .unwrap_or_else(|| panic!("{name}.{f} is not in the official schema"));
                    assert_eq!(def.ty.to_string(), o.ty.to_string(), "{name}.{f} type");
                    checked += 1;
                }
            }
            (ExtendedType::Enum(a), ExtendedType::Enum(b)) => {
                for v in a.values.keys() {
                    assert!(
                        b.values.contains_key(v),
                        "{name}.{v} is not in the official enum"
                    );
                    checked += 1;
                }
            }
            (ExtendedType::Scalar(_), ExtendedType::Scalar(_)) => {}
            _ => panic!("type {name} has another kind in the official schema"),
        }
    }
    println!("subset checked: {checked} fields, arguments and enum values");
}

fn check_documents(schema: &Valid<Schema>, label: &str) {
    for (name, req) in mlc_monday::request_builder::sample_documents() {
        let doc = ExecutableDocument::parse_and_validate(
            schema,
            req.query.clone(),
            format!("{name}.graphql"),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{name} does not validate against the {label} schema: {e}\n{}",
                req.query
            )
        });
        let op = doc.operations.get(None).expect("one operation");
        let vars: serde_json_bytes::Map<serde_json_bytes::ByteString, serde_json_bytes::Value> =
            req.variables
                .iter()
                .map(|(k, v)| (k.as_str().into(), serde_json_bytes::Value::from(v.clone())))
                .collect();
        apollo_compiler::request::coerce_variable_values(schema, op, &vars).unwrap_or_else(|e| {
            panic!(
                "{name}: variables do not coerce against the {label} schema: {}",
                e.message()
            )
        });
    }
}

#[test]
fn every_document_validates_against_the_full_official_schema() {
    let Some(full) = official() else { return };
    check_documents(&full, "official");
    println!(
        "{} documents validated against the official schema",
        mlc_monday::request_builder::sample_documents().len()
    );
}

#[test]
fn every_document_validates_against_the_subset() {
    check_documents(&sim_monday::subset_schema().expect("subset"), "subset");
}
