//! The org's data: schema, records, indexes, and the record-level operations (upsert by
//! external id, update by Id, create) with the validation Salesforce applies.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{json, Map, Value};

/// One stored record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SObject {
    /// The 18-character Id.
    pub id: String,
    /// The sObject type.
    pub object: String,
    /// Field values (without `Id`).
    pub fields: Map<String, Value>,
}

impl SObject {
    /// A field as text (`None` when absent or null).
    pub fn text(&self, field: &str) -> Option<String> {
        match self.fields.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => Some(v.to_string()),
        }
    }
}

/// Field types the simulator validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text (string, textarea, phone, url, email).
    Text,
    /// Restricted picklist.
    Picklist,
    /// `YYYY-MM-DD`.
    Date,
    /// Number (currency, double, percent).
    Number,
    /// Boolean.
    Bool,
    /// Lookup to another object.
    Reference,
}

impl FieldType {
    fn sf_name(self) -> &'static str {
        match self {
            FieldType::Text => "string",
            FieldType::Picklist => "picklist",
            FieldType::Date => "date",
            FieldType::Number => "currency",
            FieldType::Bool => "boolean",
            FieldType::Reference => "reference",
        }
    }
}

/// One field of the schema.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// API name.
    pub name: String,
    /// Type.
    pub kind: FieldType,
    /// Maximum length of text.
    pub max_len: usize,
    /// Required on create.
    pub required: bool,
    /// External id (unique, case-sensitive).
    pub external_id: bool,
    /// Target object of a reference, with its relationship name.
    pub reference_to: Option<(String, String)>,
}

impl FieldDef {
    /// A text field.
    pub fn text(name: &str, max_len: usize) -> Self {
        FieldDef {
            name: name.into(),
            kind: FieldType::Text,
            max_len,
            required: false,
            external_id: false,
            reference_to: None,
        }
    }
    fn of(name: &str, kind: FieldType) -> Self {
        FieldDef {
            kind,
            ..FieldDef::text(name, 255)
        }
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn ext(mut self) -> Self {
        self.external_id = true;
        self
    }
}

/// One object of the schema.
#[derive(Debug, Clone)]
pub struct ObjectDef {
    /// API name.
    pub name: String,
    /// Id prefix (`001`, `006`).
    pub prefix: String,
    /// Fields (without `Id`).
    pub fields: Vec<FieldDef>,
    /// False for objects the API can only update (`Invoice`).
    pub createable: bool,
}

impl ObjectDef {
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The standard stage picklist of a fresh org.
pub const STANDARD_STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
];

/// The default schema: Account and Opportunity with the connector's custom fields.
pub fn default_schema(invoice_object: bool) -> Vec<ObjectDef> {
    let t = FieldDef::text;
    let mut account = vec![t("Name", 255).required()];
    for (n, l) in [
        ("AccountNumber", 40),
        ("Phone", 40),
        ("Fax", 40),
        ("Website", 255),
        ("Description", 32000),
        ("Type", 255),
        ("Industry", 255),
        ("BillingStreet", 255),
        ("BillingCity", 40),
        ("BillingState", 80),
        ("BillingPostalCode", 20),
        ("BillingCountry", 80),
        ("ShippingStreet", 255),
        ("ShippingCity", 40),
        ("ShippingState", 80),
        ("ShippingPostalCode", 20),
        ("ShippingCountry", 80),
        ("CurrencyIsoCode", 3),
        ("SYSPRO_Email__c", 80),
        ("SYSPRO_Terms__c", 20),
        ("SYSPRO_Contact__c", 80),
    ] {
        account.push(t(n, l));
    }
    account.push(FieldDef::of("AnnualRevenue", FieldType::Number));
    account.push(FieldDef::of("SYSPRO_Credit_Limit__c", FieldType::Number));
    account.push(FieldDef::of("SYSPRO_On_Hold__c", FieldType::Bool));
    account.push(t("SYSPRO_Customer__c", 80).ext());

    let mut opp = vec![
        t("Name", 120).required(),
        FieldDef::of("StageName", FieldType::Picklist).required(),
        FieldDef::of("CloseDate", FieldType::Date).required(),
        FieldDef::of("Amount", FieldType::Number),
        FieldDef::of("Probability", FieldType::Number),
        FieldDef {
            reference_to: Some(("Account".into(), "Account".into())),
            ..FieldDef::of("AccountId", FieldType::Reference)
        },
        t("Description", 32000),
        t("Type", 255),
        t("NextStep", 255),
        t("CurrencyIsoCode", 3),
        t("SYSPRO_Invoice__c", 80).ext(),
        t("SYSPRO_Aging__c", 20),
        FieldDef::of("SYSPRO_Balance__c", FieldType::Number),
        t("SYSPRO_Status__c", 20),
        t("SYSPRO_Customer_Code__c", 80),
        FieldDef::of("SYSPRO_Invoice_Date__c", FieldType::Date),
    ];
    opp.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = vec![
        ObjectDef {
            name: "Account".into(),
            prefix: "001".into(),
            fields: account,
            createable: true,
        },
        ObjectDef {
            name: "Opportunity".into(),
            prefix: "006".into(),
            fields: opp,
            createable: true,
        },
    ];
    if invoice_object {
        out.push(ObjectDef {
            name: "Invoice".into(),
            prefix: "3tt".into(),
            fields: vec![
                t("DocumentNumber", 255),
                FieldDef::of("Balance", FieldType::Number),
                t("Status", 40),
            ],
            createable: false,
        });
    }
    out
}

/// A per-record error as Salesforce reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecErr {
    /// `statusCode` / `errorCode`.
    pub code: String,
    /// Message.
    pub message: String,
    /// Fields at fault.
    pub fields: Vec<String>,
}

impl RecErr {
    pub(crate) fn new(code: &str, message: impl Into<String>, fields: &[&str]) -> Self {
        RecErr {
            code: code.into(),
            message: message.into(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The collections shape (`statusCode`).
    pub fn collection_json(&self) -> Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }

    /// The top-level shape (`errorCode`).
    pub fn top_json(&self) -> Value {
        json!({"errorCode": self.code, "message": self.message, "fields": self.fields})
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteResult {
    /// Written.
    Ok {
        /// Id.
        id: String,
        /// Created (not updated).
        created: bool,
    },
    /// Several records carry the external id value (upsert only).
    Multiple(Vec<String>),
    /// Rejected.
    Err(RecErr),
}

/// The records.
#[derive(Debug, Default)]
pub struct Data {
    pub(crate) schema: Vec<ObjectDef>,
    pub(crate) stages: Vec<String>,
    pub(crate) records: BTreeMap<String, Vec<SObject>>,
    ids: HashMap<String, (String, usize)>,
    ext_index: HashMap<(String, String, String), Vec<usize>>,
    next_id: u64,
}

impl Data {
    pub(crate) fn new(schema: Vec<ObjectDef>, stages: Vec<String>) -> Self {
        Data {
            schema,
            stages,
            ..Default::default()
        }
    }

    /// The object definition.
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.schema.iter().find(|o| o.name == name)
    }

    /// All records of an object.
    pub fn all(&self, object: &str) -> Vec<SObject> {
        self.records.get(object).cloned().unwrap_or_default()
    }

    pub(crate) fn records_of(&self, object: &str) -> &[SObject] {
        self.records
            .get(object)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// A record by Id.
    pub fn get(&self, id: &str) -> Option<&SObject> {
        let (o, i) = self.ids.get(id)?;
        self.records.get(o)?.get(*i)
    }

    /// Ids of records whose external-id field equals `value` (exact).
    pub fn by_ext(&self, object: &str, field: &str, value: &str) -> Vec<String> {
        let Some(idx) =
            self.ext_index
                .get(&(object.to_string(), field.to_string(), value.to_string()))
        else {
            return Vec::new();
        };
        idx.iter()
            .filter_map(|i| self.records.get(object).and_then(|r| r.get(*i)))
            .map(|r| r.id.clone())
            .collect()
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}5g{:010}AAA", self.next_id)
    }

    /// Inserts without validation (seeding; may create duplicates on purpose).
    pub fn seed(&mut self, object: &str, fields: Map<String, Value>) -> String {
        let prefix = self
            .object(object)
            .map(|o| o.prefix.clone())
            .unwrap_or_else(|| "a00".into());
        let id = self.new_id(&prefix);
        let rec = SObject {
            id: id.clone(),
            object: object.into(),
            fields,
        };
        let list = self.records.entry(object.into()).or_default();
        list.push(rec);
        let idx = list.len() - 1;
        self.ids.insert(id.clone(), (object.into(), idx));
        self.reindex(object, idx);
        id
    }

    /// Changes fields of a record without validation, as a user editing it in the UI would
    /// (tests use it to make the org drift from SYSPRO). False when no record has that Id.
    pub fn edit(&mut self, id: &str, fields: Map<String, Value>) -> bool {
        let Some((object, idx)) = self.ids.get(id).cloned() else {
            return false;
        };
        let Some(old) = self.records.get(&object).and_then(|r| r.get(idx)).cloned() else {
            return false;
        };
        if let Some(rec) = self.records.get_mut(&object).and_then(|r| r.get_mut(idx)) {
            rec.fields.extend(fields);
        }
        self.reindex_changed(&object, idx, &old);
        true
    }

    fn reindex(&mut self, object: &str, idx: usize) {
        let Some(def) = self.object(object).cloned() else {
            return;
        };
        let Some(rec) = self.records.get(object).and_then(|r| r.get(idx)).cloned() else {
            return;
        };
        // Only called for a freshly inserted record: there are no stale entries to drop.
        for f in def.fields.iter().filter(|f| f.external_id) {
            if let Some(val) = rec.text(&f.name) {
                self.ext_index
                    .entry((object.into(), f.name.clone(), val))
                    .or_default()
                    .push(idx);
            }
        }
    }

    fn reindex_changed(&mut self, object: &str, idx: usize, old: &SObject) {
        let Some(def) = self.object(object).cloned() else {
            return;
        };
        let Some(rec) = self.records.get(object).and_then(|r| r.get(idx)).cloned() else {
            return;
        };
        for f in def.fields.iter().filter(|f| f.external_id) {
            let before = old.text(&f.name);
            let after = rec.text(&f.name);
            if before == after {
                continue;
            }
            if let Some(b) = before {
                if let Some(v) = self.ext_index.get_mut(&(object.into(), f.name.clone(), b)) {
                    v.retain(|i| *i != idx);
                }
            }
            if let Some(a) = after {
                self.ext_index
                    .entry((object.into(), f.name.clone(), a))
                    .or_default()
                    .push(idx);
            }
        }
    }

    /// Resolves nested parent references (`"Account": {"SYSPRO_Customer__c": "C1"}`) into
    /// their Id fields.
    fn resolve_relationships(
        &self,
        def: &ObjectDef,
        body: &mut Map<String, Value>,
    ) -> Result<(), RecErr> {
        let nested: Vec<String> = body
            .iter()
            .filter(|(k, v)| v.is_object() && k.as_str() != "attributes")
            .map(|(k, _)| k.clone())
            .collect();
        for rel in nested {
            let Some(field) = def
                .fields
                .iter()
                .find(|f| f.reference_to.as_ref().map(|r| r.1.as_str()) == Some(rel.as_str()))
            else {
                return Err(RecErr::new(
                    "INVALID_FIELD",
                    format!("No such column '{rel}' on sobject of type {}", def.name),
                    &[&rel],
                ));
            };
            let Some((target, _)) = field.reference_to.clone() else {
                continue;
            };
            let Some(Value::Object(inner)) = body.remove(&rel) else {
                continue;
            };
            let pair = inner.iter().find(|(k, _)| k.as_str() != "attributes");
            let Some((ext_field, ext_val)) = pair else {
                return Err(RecErr::new(
                    "INVALID_FIELD",
                    format!("empty reference {rel}"),
                    &[&rel],
                ));
            };
            let ext_val = match ext_val {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let tdef = self.object(&target);
            let is_ext = tdef
                .and_then(|t| t.field(ext_field))
                .map(|f| f.external_id)
                .unwrap_or(false);
            if !is_ext {
                return Err(RecErr::new(
                    "INVALID_FIELD",
                    format!("Field name provided, {ext_field} is not an External ID or indexed field for {target}"),
                    &[&rel],
                ));
            }
            let found = self.by_ext(&target, ext_field, &ext_val);
            match found.as_slice() {
                [id] => {
                    body.insert(field.name.clone(), Value::String(id.clone()));
                }
                [] => {
                    return Err(RecErr::new(
                        "INVALID_FIELD",
                        format!("Foreign key external ID: {ext_val} not found for field {ext_field} in entity {target}"),
                        &[&field.name],
                    ))
                }
                _ => {
                    return Err(RecErr::new(
                        "INVALID_FIELD",
                        format!("Foreign key external ID: {ext_val} matched more than one record for field {ext_field} in entity {target}"),
                        &[&field.name],
                    ))
                }
            }
        }
        Ok(())
    }

    fn validate(
        &self,
        def: &ObjectDef,
        body: &Map<String, Value>,
        creating: bool,
        self_idx: Option<usize>,
    ) -> Result<(), RecErr> {
        for (k, v) in body {
            if k == "attributes" {
                continue;
            }
            let Some(f) = def.field(k) else {
                return Err(RecErr::new(
                    "INVALID_FIELD",
                    format!("No such column '{k}' on sobject of type {}", def.name),
                    &[k],
                ));
            };
            if v.is_null() {
                if f.required {
                    return Err(RecErr::new(
                        "REQUIRED_FIELD_MISSING",
                        format!("Required fields are missing: [{k}]"),
                        &[k],
                    ));
                }
                continue;
            }
            match f.kind {
                FieldType::Text => {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(RecErr::new(
                                "JSON_PARSER_ERROR",
                                format!("Cannot deserialize instance of string from {v} for {k}"),
                                &[k],
                            ))
                        }
                    };
                    if s.chars().count() > f.max_len {
                        return Err(RecErr::new(
                            "STRING_TOO_LONG",
                            format!(
                                "{k}: data value too large: {} (max length={})",
                                s.chars().take(40).collect::<String>(),
                                f.max_len
                            ),
                            &[k],
                        ));
                    }
                    if f.required && s.trim().is_empty() {
                        return Err(RecErr::new(
                            "REQUIRED_FIELD_MISSING",
                            format!("Required fields are missing: [{k}]"),
                            &[k],
                        ));
                    }
                    if f.external_id {
                        let others: Vec<String> = self
                            .by_ext(&def.name, k, &s)
                            .into_iter()
                            .filter(|id| {
                                self.ids
                                    .get(id)
                                    .map(|x| Some(x.1) != self_idx)
                                    .unwrap_or(true)
                            })
                            .collect();
                        if let Some(other) = others.first() {
                            return Err(RecErr::new(
                                "DUPLICATE_VALUE",
                                format!("duplicate value found: {k} duplicates value on record with id: {other}"),
                                &[k],
                            ));
                        }
                    }
                }
                FieldType::Picklist => {
                    let s = v.as_str().unwrap_or_default();
                    if !self.stages.iter().any(|st| st == s) {
                        return Err(RecErr::new(
                            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                            format!("{k}: bad value for restricted picklist field: {s}"),
                            &[k],
                        ));
                    }
                }
                FieldType::Date => {
                    let ok = v
                        .as_str()
                        .map(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok())
                        .unwrap_or(false);
                    if !ok {
                        return Err(RecErr::new(
                            "INVALID_TYPE_ON_FIELD_IN_RECORD",
                            format!("{k}: value not of required type: {v}"),
                            &[k],
                        ));
                    }
                }
                FieldType::Number => {
                    let ok = v.is_number()
                        || v.as_str()
                            .map(|s| s.trim().parse::<f64>().is_ok())
                            .unwrap_or(false);
                    if !ok {
                        return Err(RecErr::new(
                            "INVALID_TYPE_ON_FIELD_IN_RECORD",
                            format!("{k}: value not of required type: {v}"),
                            &[k],
                        ));
                    }
                }
                FieldType::Bool => {
                    if !v.is_boolean() {
                        return Err(RecErr::new(
                            "INVALID_TYPE_ON_FIELD_IN_RECORD",
                            format!("{k}: value not of required type: {v}"),
                            &[k],
                        ));
                    }
                }
                FieldType::Reference => {
                    let target = f
                        .reference_to
                        .as_ref()
                        .map(|r| r.0.clone())
                        .unwrap_or_default();
                    let ok = v
                        .as_str()
                        .and_then(|id| self.get(id))
                        .map(|r| r.object == target)
                        .unwrap_or(false);
                    if !ok {
                        return Err(RecErr::new(
                            "INVALID_CROSS_REFERENCE_KEY",
                            format!("invalid cross reference id: {v}"),
                            &[k],
                        ));
                    }
                }
            }
        }
        if creating {
            let missing: Vec<&str> = def
                .fields
                .iter()
                .filter(|f| f.required && body.get(&f.name).map(|v| v.is_null()).unwrap_or(true))
                .map(|f| f.name.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(RecErr::new(
                    "REQUIRED_FIELD_MISSING",
                    format!("Required fields are missing: [{}]", missing.join(", ")),
                    &missing,
                ));
            }
        }
        Ok(())
    }

    /// Upsert by external id. `body` must not carry `Id`; it may carry the external-id field
    /// (collections do) and nested parent references.
    pub fn upsert(
        &mut self,
        object: &str,
        ext_field: &str,
        ext_value: &str,
        body: &Map<String, Value>,
    ) -> WriteResult {
        let Some(def) = self.object(object).cloned() else {
            return WriteResult::Err(RecErr::new(
                "NOT_FOUND",
                format!("The requested resource does not exist: sObject type '{object}' is not supported"),
                &[],
            ));
        };
        if !def.field(ext_field).map(|f| f.external_id).unwrap_or(false) {
            return WriteResult::Err(RecErr::new(
                "NOT_FOUND",
                format!(
                    "Provided external ID field does not exist or is not accessible: {ext_field}"
                ),
                &[],
            ));
        }
        let mut body = body.clone();
        body.remove("attributes");
        if body.contains_key("Id") {
            return WriteResult::Err(RecErr::new(
                "INVALID_FIELD",
                "Unable to create/update fields: Id. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                &["Id"],
            ));
        }
        if let Some(v) = body.get(ext_field) {
            if v.as_str() != Some(ext_value) {
                return WriteResult::Err(RecErr::new(
                    "INVALID_FIELD",
                    format!("{ext_field}: the value in the body differs from the external id"),
                    &[ext_field],
                ));
            }
        }
        if let Err(e) = self.resolve_relationships(&def, &mut body) {
            return WriteResult::Err(e);
        }
        let matches = self.by_ext(object, ext_field, ext_value);
        match matches.len() {
            0 => {
                if !def.createable {
                    return WriteResult::Err(RecErr::new(
                        "INVALID_TYPE",
                        format!("entity type {object} does not support create"),
                        &[],
                    ));
                }
                body.insert(ext_field.into(), Value::String(ext_value.into()));
                if let Err(e) = self.validate(&def, &body, true, None) {
                    return WriteResult::Err(e);
                }
                let id = self.seed(object, body);
                WriteResult::Ok { id, created: true }
            }
            1 => {
                let id = matches[0].clone();
                match self.update_by_id_inner(&def, &id, body) {
                    Ok(()) => WriteResult::Ok { id, created: false },
                    Err(e) => WriteResult::Err(e),
                }
            }
            _ => WriteResult::Multiple(matches),
        }
    }

    fn update_by_id_inner(
        &mut self,
        def: &ObjectDef,
        id: &str,
        body: Map<String, Value>,
    ) -> Result<(), RecErr> {
        let Some((object, idx)) = self.ids.get(id).cloned() else {
            return Err(RecErr::new(
                "INVALID_CROSS_REFERENCE_KEY",
                format!("invalid cross reference id: {id}"),
                &[],
            ));
        };
        if object != def.name {
            return Err(RecErr::new(
                "INVALID_CROSS_REFERENCE_KEY",
                format!("invalid cross reference id: {id} is not a {}", def.name),
                &[],
            ));
        }
        self.validate(def, &body, false, Some(idx))?;
        let old = self.records[&object][idx].clone();
        if let Some(rec) = self.records.get_mut(&object).and_then(|r| r.get_mut(idx)) {
            for (k, v) in body {
                rec.fields.insert(k, v);
            }
        }
        self.reindex_changed(&object, idx, &old);
        Ok(())
    }

    /// Update by Id.
    pub fn update(&mut self, object: &str, id: &str, body: &Map<String, Value>) -> WriteResult {
        let Some(def) = self.object(object).cloned() else {
            return WriteResult::Err(RecErr::new(
                "NOT_FOUND",
                format!("sObject type '{object}' is not supported"),
                &[],
            ));
        };
        let mut body = body.clone();
        body.remove("attributes");
        body.remove("Id");
        if let Err(e) = self.resolve_relationships(&def, &mut body) {
            return WriteResult::Err(e);
        }
        match self.update_by_id_inner(&def, id, body) {
            Ok(()) => WriteResult::Ok {
                id: id.to_string(),
                created: false,
            },
            Err(e) => WriteResult::Err(e),
        }
    }

    /// Describe JSON.
    pub fn describe(&self, object: &str) -> Option<Value> {
        let def = self.object(object)?;
        let mut fields = vec![
            json!({"name": "Id", "type": "id", "externalId": false, "unique": false,
            "createable": false, "updateable": false, "nillable": false, "length": 18, "picklistValues": []}),
        ];
        for f in &def.fields {
            let picklist: Vec<Value> = if f.kind == FieldType::Picklist {
                self.stages
                    .iter()
                    .map(|s| json!({"value": s, "label": s, "active": true, "defaultValue": false}))
                    .collect()
            } else {
                Vec::new()
            };
            fields.push(json!({
                "name": f.name,
                "type": f.kind.sf_name(),
                "externalId": f.external_id,
                "unique": f.external_id,
                "caseSensitive": f.external_id,
                "createable": def.createable,
                "updateable": true,
                "nillable": !f.required,
                "length": if f.kind == FieldType::Text { f.max_len } else { 0 },
                "referenceTo": f.reference_to.as_ref().map(|r| vec![r.0.clone()]).unwrap_or_default(),
                "relationshipName": f.reference_to.as_ref().map(|r| r.1.clone()),
                "restrictedPicklist": f.kind == FieldType::Picklist,
                "picklistValues": picklist,
            }));
        }
        Some(json!({
            "name": def.name,
            "keyPrefix": def.prefix,
            "createable": def.createable,
            "updateable": true,
            "fields": fields,
        }))
    }
}
