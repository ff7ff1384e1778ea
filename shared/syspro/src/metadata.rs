//! OData `$metadata` (CSDL): entity sets, their keys and property types. Read once per process;
//! it drives value normalisation (which strings are dates, which are rowversions), literal
//! coercion in filters, `has_row_version` and the mismatches `ping` reports.

use std::collections::{BTreeMap, HashMap};

use quick_xml::events::Event;
use quick_xml::Reader;

/// What a property holds, as far as reading goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropKind {
    /// `Edm.String`, `Edm.Guid`, …
    Text,
    /// `Edm.Decimal`, `Edm.Int32`, `Edm.Double`, …
    Number,
    /// `Edm.Date`, `Edm.DateTimeOffset`, `Edm.DateTime`: business dates.
    Date,
    /// `Edm.Binary`: the `TimeStamp` rowversion.
    Binary,
    /// `Edm.Boolean`.
    Bool,
}

impl PropKind {
    /// From an `Edm.*` type name.
    pub fn from_edm(t: &str) -> PropKind {
        match t {
            "Edm.Decimal" | "Edm.Double" | "Edm.Single" | "Edm.Int16" | "Edm.Int32"
            | "Edm.Int64" | "Edm.Byte" | "Edm.SByte" => PropKind::Number,
            "Edm.Date" | "Edm.DateTimeOffset" | "Edm.DateTime" => PropKind::Date,
            "Edm.Binary" => PropKind::Binary,
            "Edm.Boolean" => PropKind::Bool,
            _ => PropKind::Text,
        }
    }
}

/// One entity set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntitySetMeta {
    /// Key properties, in order.
    pub keys: Vec<String>,
    /// Property → kind.
    pub props: BTreeMap<String, PropKind>,
}

impl EntitySetMeta {
    /// True when the set exposes the `TimeStamp` rowversion.
    pub fn has_row_version(&self) -> bool {
        self.props.get("TimeStamp") == Some(&PropKind::Binary)
    }
}

/// The service's entity sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Entity set name → shape.
    pub sets: BTreeMap<String, EntitySetMeta>,
}

impl Metadata {
    /// Parses CSDL XML.
    pub fn parse(xml: &str) -> Result<Metadata, String> {
        let mut r = Reader::from_str(xml);
        let mut types: HashMap<String, EntitySetMeta> = HashMap::new();
        let mut sets: Vec<(String, String)> = Vec::new();
        let mut current: Option<(String, EntitySetMeta)> = None;
        let mut in_key = false;
        let mut depth = 0usize;
        loop {
            let ev = r
                .read_event()
                .map_err(|e| format!("$metadata is not valid XML: {e}"))?;
            let (e, is_empty) = match &ev {
                Event::Eof => break,
                Event::Start(e) => {
                    depth += 1;
                    (e.clone(), false)
                }
                Event::Empty(e) => (e.clone(), true),
                Event::End(e) => {
                    depth = depth.saturating_sub(1);
                    match local(e.name().as_ref()) {
                        "EntityType" => {
                            if let Some((n, m)) = current.take() {
                                types.insert(n, m);
                            }
                        }
                        "Key" => in_key = false,
                        _ => {}
                    }
                    continue;
                }
                _ => continue,
            };
            let attr = |name: &str| -> Option<String> {
                e.attributes().flatten().find_map(|a| {
                    (local(a.key.as_ref()) == name)
                        .then(|| {
                            a.normalized_value(quick_xml::XmlVersion::default())
                                .ok()
                                .map(|v| v.into_owned())
                        })
                        .flatten()
                })
            };
            match local(e.name().as_ref()) {
                "EntityType" => {
                    let name = attr("Name").unwrap_or_default();
                    if is_empty {
                        types.insert(name, EntitySetMeta::default());
                    } else {
                        current = Some((name, EntitySetMeta::default()));
                    }
                }
                "Key" if !is_empty => in_key = true,
                "PropertyRef" if in_key => {
                    if let (Some((_, m)), Some(n)) = (current.as_mut(), attr("Name")) {
                        m.keys.push(n);
                    }
                }
                "Property" => {
                    if let (Some((_, m)), Some(n)) = (current.as_mut(), attr("Name")) {
                        let kind = PropKind::from_edm(&attr("Type").unwrap_or_default());
                        m.props.insert(n, kind);
                    }
                }
                "EntitySet" => {
                    if let (Some(n), Some(t)) = (attr("Name"), attr("EntityType")) {
                        let t = t.rsplit('.').next().unwrap_or(&t).to_string();
                        sets.push((n, t));
                    }
                }
                _ => {}
            }
        }
        if depth != 0 {
            return Err("$metadata is truncated".into());
        }
        let sets = sets
            .into_iter()
            .filter_map(|(n, t)| types.get(&t).map(|m| (n, m.clone())))
            .collect();
        Ok(Metadata { sets })
    }
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shape of an OData v4 CSDL document as SYSPRO's service exposes SQL tables (one entity
    // type per table, entity set named after the table); trimmed by hand.
    const CSDL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
<edmx:DataServices><Schema Namespace="SYSPRO" xmlns="http://docs.oasis-open.org/odata/ns/edm">
<EntityType Name="ArInvoice"><Key><PropertyRef Name="Customer"/><PropertyRef Name="Invoice"/><PropertyRef Name="DocumentType"/></Key>
<Property Name="Customer" Type="Edm.String" Nullable="false" MaxLength="15"/>
<Property Name="Invoice" Type="Edm.String"/><Property Name="DocumentType" Type="Edm.String"/>
<Property Name="InvoiceDate" Type="Edm.DateTimeOffset"/><Property Name="InvoiceBal1" Type="Edm.Decimal" Precision="14" Scale="2"/>
<Property Name="TimeStamp" Type="Edm.Binary" MaxLength="8"/>
</EntityType>
<EntityType Name="ApSupplier"><Key><PropertyRef Name="Supplier"/></Key><Property Name="Supplier" Type="Edm.String"/></EntityType>
<EntityContainer Name="C"><EntitySet Name="ArInvoice" EntityType="SYSPRO.ArInvoice"/><EntitySet Name="ApSupplier" EntityType="SYSPRO.ApSupplier"/></EntityContainer>
</Schema></edmx:DataServices></edmx:Edmx>"#;

    #[test]
    fn parses_sets_keys_and_types() {
        let m = Metadata::parse(CSDL).unwrap();
        let inv = &m.sets["ArInvoice"];
        assert_eq!(inv.keys, ["Customer", "Invoice", "DocumentType"]);
        assert_eq!(inv.props["InvoiceDate"], PropKind::Date);
        assert_eq!(inv.props["InvoiceBal1"], PropKind::Number);
        assert!(inv.has_row_version());
        assert!(!m.sets["ApSupplier"].has_row_version());
        assert!(Metadata::parse(&CSDL[..CSDL.len() / 2]).is_err());
    }
}
