//! Validation end to end: each mistake is reported at its file, line and path, and all of a
//! file's mistakes are reported together.

use mlc_config::{load, parse, ConfigError};
use mlc_core::config::{ChangeDetection, Destination, ReadPath, SysproAuth};
use mlc_core::Entity;

const SF: &str = r#"[settings]
max_attempts = 5

[[flows]]
id = "acme-sf"
timezone = "Africa/Johannesburg"
schedule = "15m"

[flows.syspro]
base_url = "https://erp.acme.example:40001"
company = "ACME"
operator = "MLCONNECT"
password = "env:SYSPRO_PASSWORD"

[flows.destination]
kind = "salesforce"
my_domain_url = "https://acme.my.salesforce.com"
client_id = "env:SF_CLIENT_ID"
client_secret = "env:SF_CLIENT_SECRET"
stage_map = { open = "Prospecting", overdue = "Negotiation/Review", paid = "Closed Won" }

[[flows.entities]]
entity = "ArCustomer"
change_detection = "rowversion"
mapping = { Name = { from = "Name", trim = true }, Phone = "Telephone" }

[[flows.entities]]
entity = "ArInvoice"
change_detection = "open-items"

[flows.entities.mapping]
Amount = { from = "InvoiceBal1", type = "number" }
CloseDate = { from = "_DueDate", type = "date" }
"#;

const MONDAY: &str = r#"[[flows]]
id = "globex-monday"
schedule = "5m"

[flows.syspro]
base_url = "http://127.0.0.1:8080"
company = "G"
auth = "session"
read_path = "enet"
operator = "MLCONNECT"
password = "arn:aws:secretsmanager:us-east-1:123456789012:secret:globex#password"

[flows.destination]
kind = "monday"
token = "env:MONDAY_TOKEN"

[[flows.entities]]
entity = "ApInvoice"
change_detection = "date-window"
date_field = "InvoiceDate"

[flows.entities.monday]
board_id = "1234567890"
item_name = "{Invoice} · {Supplier.SupplierName}"
id_column = "syspro_id"

[flows.entities.mapping]
amount = { from = "OrigInvValue", type = "number", column_type = "numbers" }
status = { from = "_Status", map = { open = "Open", paid = "Paid", overdue = "Late" }, column_type = "status" }
"#;

/// 1-based line of the first occurrence of `needle` (after `after`, when given).
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the test text"));
    text[..at].matches('\n').count() + 1
}

fn edit(base: &str, from: &str, to: &str) -> String {
    assert!(base.contains(from), "{from:?} not in base");
    base.replacen(from, to, 1)
}

fn errors(text: &str) -> ConfigError {
    match parse("t.toml", text) {
        Ok(_) => panic!("expected problems, the config validated:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts one problem at `line` and `path` whose message contains `msg`.
#[track_caller]
fn assert_problem(e: &ConfigError, line: usize, path: &str, msg: &str) {
    let want = format!("t.toml:{line}: {path}: ");
    assert!(
        e.problems
            .iter()
            .any(|p| p.to_string().starts_with(&want) && p.message.contains(msg)),
        "no problem `{want}…{msg}…` in:\n{e}"
    );
}

/// The only problem is the expected one.
#[track_caller]
fn assert_only(text: &str, needle: &str, path: &str, msg: &str) {
    let e = errors(text);
    assert_problem(&e, line_of(text, needle), path, msg);
    assert_eq!(e.problems.len(), 1, "{e}");
}

#[test]
fn valid_configs_parse_with_defaults() {
    let c = parse("sf.toml", SF).unwrap();
    assert_eq!(c.settings.max_attempts, 5);
    assert_eq!(c.settings.max_message_bytes, 240 * 1024);
    let f = &c.flows[0];
    assert_eq!(f.id, "acme-sf");
    assert_eq!(f.syspro.page_size, 5000);
    assert_eq!(f.syspro.auth, SysproAuth::Basic);
    assert_eq!(f.entities[1].change_detection, ChangeDetection::OpenItems);
    let Destination::Salesforce(sf) = &f.destination else {
        panic!("salesforce")
    };
    assert_eq!(sf.api_version, "v62.0");

    let c = parse("m.toml", MONDAY).unwrap();
    let f = &c.flows[0];
    assert_eq!(f.timezone, "UTC");
    assert_eq!(f.syspro.read_path, ReadPath::Enet);
    assert_eq!(f.entities[0].entity, Entity::ApInvoice);
    assert_eq!(
        f.stream_for(Entity::ApInvoice),
        "globex-monday:board:1234567890"
    );
}

#[test]
fn example_config_validates() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/flows.example.toml");
    let c = load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.flows.len(), 2);
    let sf = c.flow("acme-sf").expect("salesforce flow");
    assert_eq!(sf.destination_name(), "salesforce");
    assert_eq!(
        sf.entities.iter().map(|e| e.entity).collect::<Vec<_>>(),
        [Entity::ArCustomer, Entity::ArInvoice]
    );
    assert_eq!(
        sf.entity(Entity::ArCustomer).unwrap().change_detection,
        ChangeDetection::Rowversion
    );
    // The recommended strategy everywhere: rowversion reads only what changed.
    for f in &c.flows {
        for e in &f.entities {
            assert_eq!(
                e.change_detection,
                ChangeDetection::Rowversion,
                "{}",
                e.entity
            );
        }
    }
    let inv = sf.entity(Entity::ArInvoice).unwrap();
    assert_eq!(inv.initial_scope, mlc_core::config::InitialScope::Since);
    for field in [
        "Name",
        "BillingStreet",
        "Phone",
        "SYSPRO_Email__c",
        "CurrencyIsoCode",
        "SYSPRO_Credit_Limit__c",
    ] {
        assert!(
            sf.entity(Entity::ArCustomer)
                .unwrap()
                .mapping
                .contains_key(field),
            "{field}"
        );
    }
    let Destination::Salesforce(d) = &sf.destination else {
        panic!("salesforce")
    };
    assert_eq!(d.stage_map["paid"], "Closed Won");
    assert!(d.aging_field.is_some());
    let m = c.flow("globex-monday").expect("monday flow");
    assert_eq!(
        m.entities.iter().map(|e| e.entity).collect::<Vec<_>>(),
        [
            Entity::ApSupplier,
            Entity::ApInvoice,
            Entity::PorMasterHdr,
            Entity::ArInvoice
        ]
    );
    assert!(m.entities.iter().all(|e| e.monday.is_some()));
    assert_eq!(
        mlc_config::eventbridge_rate(&sf.schedule),
        "rate(15 minutes)"
    );
}

#[test]
fn unreadable_file_names_the_file() {
    let e = load(std::path::Path::new("/nonexistent/flows.toml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/flows.toml: cannot read"),
        "{e}"
    );
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn syntax_errors_have_lines() {
    let text = edit(SF, "company = \"ACME\"", "company = \"ACME");
    let e = errors(&text);
    let line = line_of(&text, "company = ");
    assert!(
        e.problems
            .iter()
            .any(|p| p.line == line && p.message.starts_with("syntax error")),
        "{e}"
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_all_reported() {
    let text = edit(
        SF,
        "company = \"ACME\"",
        "company = \"ACME\"\npasword = \"env:X\"\npage_size = \"big\"",
    );
    let text = edit(
        &text,
        "change_detection = \"open-items\"",
        "change_detect = \"open-items\"",
    );
    let e = errors(&text);
    assert_problem(
        &e,
        line_of(&text, "pasword"),
        "flows[0].syspro.pasword",
        "unknown key (did you mean \"password\"?)",
    );
    assert_problem(
        &e,
        line_of(&text, "page_size"),
        "flows[0].syspro.page_size",
        "expected an integer, found a string",
    );
    assert_problem(
        &e,
        line_of(&text, "change_detect ="),
        "flows[0].entities[1].change_detect",
        "unknown key",
    );
    // change_detection is then missing from that entity: reported at its header.
    assert_problem(
        &e,
        line_of(&text, "[[flows.entities]]\nentity = \"ArInvoice\""),
        "flows[0].entities[1].change_detection",
        "missing required key",
    );
    assert_eq!(e.problems.len(), 4, "{e}");
}

#[test]
fn three_mistakes_in_one_file_are_all_reported() {
    let text = edit(SF, "id = \"acme-sf\"", "id = \"Acme_SF\"");
    let text = edit(&text, "schedule = \"15m\"", "schedule = \"30s\"");
    let text = edit(&text, "from = \"InvoiceBal1\"", "from = \"Invoice Bal1\"");
    let e = errors(&text);
    assert_eq!(e.problems.len(), 3, "{e}");
    let lines: Vec<String> = e.to_string().lines().map(String::from).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        format!("t.toml:{}: flows[0].id: flow id \"Acme_SF\" must be 1 to 64 lowercase letters, digits or '-' (it names AWS resources)", line_of(&text, "id = "))
    );
    assert!(
        lines[1].starts_with(&format!(
            "t.toml:{}: flows[0].schedule: ",
            line_of(&text, "schedule")
        )),
        "{e}"
    );
    assert_eq!(
        lines[2],
        format!("t.toml:{}: flows[0].entities[1].mapping.Amount.from: source field \"Invoice Bal1\" cannot be a SYSPRO column name (ASCII letters, digits and '_', starting with a letter)", line_of(&text, "Invoice Bal1"))
    );
}

#[test]
fn duplicate_flow_ids() {
    let second = SF.replace("[settings]\nmax_attempts = 5\n", "");
    let text = format!("{SF}\n{second}");
    let e = errors(&text);
    let second_id = text.rfind("id = \"acme-sf\"").unwrap();
    let line = text[..second_id].matches('\n').count() + 1;
    assert_problem(
        &e,
        line,
        "flows[1].id",
        "duplicate flow id \"acme-sf\" (also used by flows[0])",
    );
    assert_eq!(e.problems.len(), 1, "{e}");
}

#[test]
fn flow_id_charset_and_length() {
    let long = "a".repeat(65);
    let text = edit(SF, "id = \"acme-sf\"", &format!("id = \"{long}\""));
    assert_only(
        &text,
        "id = ",
        "flows[0].id",
        "must be 1 to 64 lowercase letters",
    );
    assert!(mlc_config::check_flow_id("acme-sf-2").is_ok());
    assert!(mlc_config::check_flow_id("").is_err());
    assert!(mlc_config::check_flow_id("acme.sf").is_err());
}

#[test]
fn invalid_timezone() {
    let text = edit(SF, "Africa/Johannesburg", "Africa/Jozi");
    assert_only(
        &text,
        "timezone",
        "flows[0].timezone",
        "\"Africa/Jozi\" is not an IANA time zone",
    );
}

#[test]
fn schedule_out_of_range() {
    let text = edit(SF, "schedule = \"15m\"", "schedule = \"8d\"");
    assert_only(&text, "schedule", "flows[0].schedule", "outside 1m..7d");
    let text = edit(SF, "schedule = \"15m\"", "schedule = \"quarterly\"");
    assert_only(
        &text,
        "schedule",
        "flows[0].schedule",
        "is not a period like 5m, 15m, 1h or 1d",
    );
}

#[test]
fn plain_http_only_for_loopback_and_urls_must_parse() {
    let text = edit(
        SF,
        "https://erp.acme.example:40001",
        "http://erp.acme.example:40001",
    );
    assert_only(
        &text,
        "base_url",
        "flows[0].syspro.base_url",
        "plain http:// is only allowed for loopback hosts",
    );
    let text = edit(
        SF,
        "https://acme.my.salesforce.com",
        "acme.my.salesforce.com",
    );
    assert_only(
        &text,
        "my_domain_url",
        "flows[0].destination.my_domain_url",
        "not a valid URL",
    );
    // The Monday fixture reads SYSPRO over http on 127.0.0.1: allowed.
    assert!(parse("t.toml", MONDAY).is_ok());
}

#[test]
fn inline_secrets_are_refused_without_echoing_them() {
    let text = edit(
        SF,
        "client_secret = \"env:SF_CLIENT_SECRET\"",
        "client_secret = \"s3cr3t-Value\"",
    );
    let e = errors(&text);
    assert_problem(
        &e,
        line_of(&text, "client_secret"),
        "flows[0].destination.client_secret",
        "not a secret reference",
    );
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
    assert_eq!(e.problems.len(), 1, "{e}");
}

#[test]
fn unknown_entity() {
    let text = edit(SF, "entity = \"ArCustomer\"", "entity = \"ArCustomers\"");
    assert_only(
        &text,
        "ArCustomers",
        "flows[0].entities[0].entity",
        "unknown SYSPRO entity \"ArCustomers\"",
    );
    let text = edit(SF, "entity = \"ArCustomer\"", "entity = \"arcustomer\"");
    assert_only(
        &text,
        "arcustomer",
        "flows[0].entities[0].entity",
        "did you mean \"ArCustomer\"?",
    );
}

#[test]
fn duplicate_entity_in_a_flow() {
    let text = edit(SF, "entity = \"ArInvoice\"", "entity = \"ArCustomer\"");
    let text = edit(
        &text,
        "change_detection = \"open-items\"",
        "change_detection = \"full-scan\"",
    );
    let text = edit(&text, "Amount = { from = \"InvoiceBal1\", type = \"number\" }\nCloseDate = { from = \"_DueDate\", type = \"date\" }", "Name = \"Name\"");
    let e = errors(&text);
    let second = text.rfind("entity = \"ArCustomer\"").unwrap();
    let line = text[..second].matches('\n').count() + 1;
    assert_problem(
        &e,
        line,
        "flows[0].entities[1].entity",
        "ArCustomer appears twice in this flow (also entities[0])",
    );
    assert_eq!(e.problems.len(), 1, "{e}");
}

#[test]
fn date_window_needs_a_date_column() {
    let text = edit(MONDAY, "date_field = \"InvoiceDate\"\n", "");
    assert_only(
        &text,
        "[[flows.entities]]",
        "flows[0].entities[0].date_field",
        "change_detection = \"date-window\" needs a date_field",
    );
    let text = edit(
        MONDAY,
        "date_field = \"InvoiceDate\"",
        "date_field = \"OrigInvValue\"",
    );
    assert_only(
        &text,
        "date_field",
        "flows[0].entities[0].date_field",
        "\"OrigInvValue\" is not a date column of ApInvoice (date columns: InvoiceDate, DueDate)",
    );
}

#[test]
fn columns_outside_the_built_in_list_are_accepted() {
    // Issue 19: `OnHold` is a real ApSupplier column; which columns a site has is its
    // `$metadata`'s business (checked by ping and the reader), not a built-in list's.
    let suppliers = MONDAY
        .replace(
            "entity = \"ApInvoice\"\nchange_detection = \"date-window\"\ndate_field = \"InvoiceDate\"",
            "entity = \"ApSupplier\"\nchange_detection = \"full-scan\"",
        )
        .replace("{Invoice} · {Supplier.SupplierName}", "{Supplier} · {SupplierName}")
        .replace(
            "amount = { from = \"OrigInvValue\", type = \"number\", column_type = \"numbers\" }",
            "on_hold = { from = \"OnHold\", column_type = \"text\" }\nuser = { from = \"UserField1\", column_type = \"text\" }",
        )
        .replace("status = { from = \"_Status\", map = { open = \"Open\", paid = \"Paid\", overdue = \"Late\" }, column_type = \"status\" }\n", "");
    assert!(suppliers.contains("from = \"OnHold\""), "{suppliers}");
    let c = parse("t.toml", &suppliers).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.flows[0].entities[0].entity, Entity::ApSupplier);
    // A name that is not in the built-in list, in a plain mapping, a template and a lookup.
    let text = edit(SF, "Phone = \"Telephone\"", "Phone = \"Telefone\"");
    parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let text = edit(
        MONDAY,
        "{Supplier.SupplierName}",
        "{Supplier.OnHold} {UserField1}",
    );
    parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn mapping_source_fields_and_template_placeholders() {
    let text = edit(SF, "Phone = \"Telephone\"", "Phone = \"Tele'phone\"");
    assert_only(
        &text,
        "Tele'phone",
        "flows[0].entities[0].mapping.Phone",
        "source field \"Tele'phone\" cannot be a SYSPRO column name",
    );
    let text = edit(SF, "Phone = \"Telephone\"", "Phone = \"Tele phone\"");
    assert_only(
        &text,
        "Tele phone",
        "flows[0].entities[0].mapping.Phone",
        "source field \"Tele phone\" cannot be a SYSPRO column name",
    );
    // Derived fields are ours: only the known ones.
    let text = edit(SF, "from = \"_DueDate\"", "from = \"_DueDat\"");
    assert_only(
        &text,
        "_DueDat\"",
        "flows[0].entities[1].mapping.CloseDate.from",
        "source field \"_DueDat\" is not a derived field (derived fields: _Status, _DueDate,",
    );
    let text = edit(
        MONDAY,
        "{Supplier.SupplierName}",
        "{Supplier.Supplier Name}",
    );
    assert_only(&text, "item_name", "flows[0].entities[0].monday.item_name", "template placeholder \"Supplier.Supplier Name\" is not in ApInvoice (as a column of ApSupplier, \"Supplier Name\" cannot be a SYSPRO column name");
    // Dotted lookups only reach a document's master.
    let text = edit(
        SF,
        "Phone = \"Telephone\"",
        "Phone = \"Customer.Telephone\"",
    );
    assert_only(
        &text,
        "Customer.Telephone",
        "flows[0].entities[0].mapping.Phone",
        "dotted lookups",
    );
}

#[test]
fn mapping_rule_needs_exactly_one_source() {
    let text = edit(
        SF,
        "CloseDate = { from = \"_DueDate\", type = \"date\" }",
        "CloseDate = { from = \"_DueDate\", value = \"2026-01-01\" }",
    );
    assert_only(
        &text,
        "CloseDate",
        "flows[0].entities[1].mapping.CloseDate",
        "needs exactly one of from, concat, template or value (found from and value)",
    );
    let text = edit(
        SF,
        "CloseDate = { from = \"_DueDate\", type = \"date\" }",
        "CloseDate = { trim = true }",
    );
    assert_only(
        &text,
        "CloseDate",
        "flows[0].entities[1].mapping.CloseDate",
        "(found none)",
    );
}

#[test]
fn map_only_with_text() {
    let text = edit(MONDAY, "map = { open", "type = \"number\", map = { open");
    assert_only(
        &text,
        "map = {",
        "flows[0].entities[0].mapping.status.map",
        "map produces text: it cannot be combined with type = \"number\"",
    );
}

/// The credit-note Opportunity name of the reference (docs/mapping.md).
const LABELLED_NAME: &str = r#"Name = { template = "{DocumentType} {Invoice}", labels = { DocumentType = { C = "Credit note", I = "Invoice", D = "Debit note" } } }"#;

#[test]
fn labels_for_fields_the_rule_reads() {
    use mlc_core::config::FieldMapping;
    let text = edit(
        SF,
        "CloseDate = {",
        &format!("{LABELLED_NAME}\nKind = {{ concat = [\"DocumentType\", \"Customer.Name\"], labels = {{ \"Customer.Name\" = {{ X = \"Y\" }}, DocumentType = {{ C = \"CR\" }} }} }}\nCloseDate = {{"),
    );
    let c = parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let inv = c.flows[0].entity(Entity::ArInvoice).unwrap();
    let Some(FieldMapping::Rule(r)) = inv.mapping.get("Name") else {
        panic!("Name is a rule")
    };
    let labels = r.labels.as_ref().expect("labels");
    assert_eq!(labels["DocumentType"]["C"], "Credit note");
    assert_eq!(labels["DocumentType"].len(), 3);
    let Some(FieldMapping::Rule(k)) = inv.mapping.get("Kind") else {
        panic!("Kind is a rule")
    };
    assert_eq!(k.labels.as_ref().unwrap()["Customer.Name"]["X"], "Y");
    // Labels on a `from` field, as a table of its own.
    let text = format!(
        "{MONDAY}\n[flows.entities.mapping.kind]\nfrom = \"_Status\"\n\n[flows.entities.mapping.kind.labels._Status]\nopen = \"Open\"\n"
    );
    parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn labels_for_a_field_the_rule_does_not_read() {
    // The mistake sits on a line of its own, below the rule's template.
    let text = format!(
        "{SF}\n[flows.entities.mapping.Name]\ntemplate = \"{{DocumentType}} {{Invoice}}\"\n\n[flows.entities.mapping.Name.labels]\nDocumentType = {{ C = \"Credit note\" }}\nDocType = {{ C = \"Credit note\" }}\n"
    );
    assert_only(
        &text,
        "DocType =",
        "flows[0].entities[1].mapping.Name.labels.DocType",
        "labels for \"DocType\", a source field this rule does not read (it reads: DocumentType, Invoice)",
    );
    // A constant reads nothing.
    let text = edit(
        SF,
        "CloseDate = {",
        "Kind = { value = \"x\", labels = { Invoice = { A = \"B\" } } }\nCloseDate = {",
    );
    assert_only(
        &text,
        "Kind = ",
        "flows[0].entities[1].mapping.Kind.labels.Invoice",
        "this rule does not read (it reads: none: labels apply to the fields of from, concat and template)",
    );
}

#[test]
fn labels_must_not_be_empty() {
    let text = edit(
        SF,
        "CloseDate = {",
        "Name = { template = \"{DocumentType} {Invoice}\", labels = { DocumentType = {} } }\nCloseDate = {",
    );
    assert_only(
        &text,
        "labels = {",
        "flows[0].entities[1].mapping.Name.labels.DocumentType",
        "the labels of \"DocumentType\" are empty",
    );
    let text = edit(
        SF,
        "CloseDate = {",
        "Name = { template = \"{DocumentType} {Invoice}\", labels = {} }\nCloseDate = {",
    );
    assert_only(
        &text,
        "labels = {",
        "flows[0].entities[1].mapping.Name.labels",
        "labels needs at least one source field",
    );
}

#[test]
fn label_values_are_written_as_compared() {
    let text = format!(
        "{SF}\n[flows.entities.mapping.Name]\ntemplate = \"{{DocumentType}} {{Invoice}}\"\n\n[flows.entities.mapping.Name.labels.DocumentType]\nC = \"Credit note\"\n\"I \" = \"Invoice\"\n"
    );
    assert_only(
        &text,
        "\"I \" =",
        "flows[0].entities[1].mapping.Name.labels.DocumentType.\"I \"",
        "values are compared trimmed: write \"I\", not \"I \"",
    );
    // A label is text.
    let text = edit(
        SF,
        "CloseDate = {",
        &format!(
            "{}\nCloseDate = {{",
            LABELLED_NAME.replace("I = \"Invoice\"", "I = 1")
        ),
    );
    assert_only(
        &text,
        "I = 1",
        "flows[0].entities[1].mapping.Name.labels.DocumentType.I",
        "expected a string, found an integer",
    );
}

#[test]
fn salesforce_api_version() {
    let text = edit(
        SF,
        "kind = \"salesforce\"",
        "kind = \"salesforce\"\napi_version = \"v45.0\"",
    );
    assert_only(
        &text,
        "api_version",
        "flows[0].destination.api_version",
        "is below v46.0",
    );
    let text = edit(
        SF,
        "kind = \"salesforce\"",
        "kind = \"salesforce\"\napi_version = \"62.0\"",
    );
    assert_only(
        &text,
        "api_version",
        "flows[0].destination.api_version",
        "must look like \"v62.0\"",
    );
}

#[test]
fn stage_map_keys_and_required_stages() {
    let text = edit(SF, "paid = \"Closed Won\"", "settled = \"Closed Won\"");
    let e = errors(&text);
    let line = line_of(&text, "stage_map");
    assert_problem(
        &e,
        line,
        "flows[0].destination.stage_map.settled",
        "unknown invoice status \"settled\"",
    );
    assert_problem(&e, line, "flows[0].destination.stage_map", "must map open, overdue and paid to Opportunity stages when the flow has ArInvoice (missing: paid)");
    assert_eq!(e.problems.len(), 2, "{e}");
}

#[test]
fn salesforce_refuses_other_entities() {
    let text = edit(SF, "entity = \"ArCustomer\"\nchange_detection = \"rowversion\"\nmapping = { Name = { from = \"Name\", trim = true }, Phone = \"Telephone\" }",
        "entity = \"ApSupplier\"\nchange_detection = \"rowversion\"");
    assert_only(
        &text,
        "ApSupplier",
        "flows[0].entities[0].entity",
        "a Salesforce flow takes ArCustomer, ArInvoice or ArInvoicePay, not ApSupplier",
    );
}

#[test]
fn monday_needs_board_targets_with_numeric_ids() {
    let text = edit(
        MONDAY,
        "board_id = \"1234567890\"",
        "board_id = \"main-board\"",
    );
    assert_only(
        &text,
        "board_id",
        "flows[0].entities[0].monday.board_id",
        "board id \"main-board\" must be numeric",
    );
    let text = edit(MONDAY, "board_id = \"1234567890\"", "board_id = 1234567890");
    assert_only(
        &text,
        "board_id",
        "flows[0].entities[0].monday.board_id",
        "expected a string, found an integer (quote it)",
    );
    let start = MONDAY.find("[flows.entities.monday]").unwrap();
    let end = MONDAY.find("[flows.entities.mapping]").unwrap();
    let text = format!("{}{}", &MONDAY[..start], &MONDAY[end..]);
    assert_only(
        &text,
        "[[flows.entities]]",
        "flows[0].entities[0].monday",
        "a Monday.com flow needs a board target for each entity",
    );
}

#[test]
fn monday_column_types() {
    let text = edit(
        MONDAY,
        "column_type = \"numbers\"",
        "column_type = \"number\"",
    );
    assert_only(
        &text,
        "column_type = \"number\"",
        "flows[0].entities[0].mapping.amount.column_type",
        "unknown Monday.com column type \"number\"",
    );
}

#[test]
fn syspro_session_with_odata_is_refused() {
    let text = edit(MONDAY, "read_path = \"enet\"", "read_path = \"odata\"");
    assert_only(
        &text,
        "auth = ",
        "flows[0].syspro.auth",
        "SYSPRO's OData service authenticates with HTTP Basic",
    );
    let e = errors(&text);
    assert!(e.problems[0].message.contains("e.net"), "{e}");
}

#[test]
fn page_size_and_timeouts() {
    let text = edit(
        SF,
        "company = \"ACME\"",
        "company = \"ACME\"\npage_size = 10000\ntimeout_secs = 0",
    );
    let e = errors(&text);
    assert_problem(
        &e,
        line_of(&text, "page_size"),
        "flows[0].syspro.page_size",
        "must be from 1 to 5000",
    );
    assert_problem(
        &e,
        line_of(&text, "timeout_secs"),
        "flows[0].syspro.timeout_secs",
        "must be at least 1",
    );
    assert_eq!(e.problems.len(), 2, "{e}");
    let text = edit(
        SF,
        "company = \"ACME\"",
        "company = \"ACME\"\npage_size = 0",
    );
    assert_only(
        &text,
        "page_size",
        "flows[0].syspro.page_size",
        "must be from 1 to 5000",
    );
    let text = edit(
        MONDAY,
        "token = \"env:MONDAY_TOKEN\"",
        "token = \"env:MONDAY_TOKEN\"\ntimeout_secs = 0",
    );
    assert_only(
        &text,
        "timeout_secs",
        "flows[0].destination.timeout_secs",
        "must be at least 1",
    );
}

#[test]
fn max_message_bytes_within_sqs_limit() {
    let text = edit(
        SF,
        "max_attempts = 5",
        "max_attempts = 5\nmax_message_bytes = 300000",
    );
    assert_only(
        &text,
        "max_message_bytes",
        "settings.max_message_bytes",
        "256 KiB",
    );
}

#[test]
fn missing_destination_kind_and_wrong_kind() {
    let text = edit(SF, "kind = \"salesforce\"", "kind = \"hubspot\"");
    assert_only(
        &text,
        "hubspot",
        "flows[0].destination.kind",
        "expected one of \"salesforce\", \"monday\", found \"hubspot\"",
    );
}

#[test]
fn shape_and_meaning_problems_of_one_flow_are_reported_together() {
    // An inline secret and an unknown key (shape) do not hide a bad time zone and an http
    // endpoint (meaning) in the same flow.
    let text = edit(
        SF,
        "password = \"env:SYSPRO_PASSWORD\"",
        "password = \"hunter2\"\nbogus = 1",
    );
    let text = edit(&text, "Africa/Johannesburg", "Mars/Olympus");
    let text = edit(
        &text,
        "https://erp.acme.example:40001",
        "http://erp.acme.example:40001",
    );
    let e = errors(&text);
    assert_problem(
        &e,
        line_of(&text, "hunter2"),
        "flows[0].syspro.password",
        "not a secret reference",
    );
    assert_problem(
        &e,
        line_of(&text, "bogus"),
        "flows[0].syspro.bogus",
        "unknown key",
    );
    assert_problem(
        &e,
        line_of(&text, "Mars"),
        "flows[0].timezone",
        "is not an IANA time zone",
    );
    assert_problem(
        &e,
        line_of(&text, "base_url"),
        "flows[0].syspro.base_url",
        "plain http://",
    );
    assert_eq!(e.problems.len(), 4, "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
}

#[test]
fn a_bad_enum_does_not_cause_follow_up_complaints() {
    // `auth = "token"` is wrong; the default that stands in for it must not also trip the
    // auth/read_path rule.
    let text = edit(MONDAY, "auth = \"session\"", "auth = \"token\"");
    assert_only(
        &text,
        "auth = ",
        "flows[0].syspro.auth",
        "expected one of \"basic\", \"session\", found \"token\"",
    );
}

#[test]
fn schema_matches_core() {
    // Every optional key set: the walk must know them all (a field added to
    // mlc_core::config and not to the walk fails here).
    use mlc_core::config::{FieldMapping, MappingRule, SalesforceTarget, ValueKind};
    use mlc_core::secret::SecretRef;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/flows.example.toml");
    let mut c = load(&path).unwrap_or_else(|e| panic!("{e}"));
    for f in &mut c.flows {
        f.trigger_secret = Some(SecretRef::Env("T".into()));
        f.syspro.company_password = Some(SecretRef::Env("C".into()));
        for e in &mut f.entities {
            e.date_field = Some("X".into());
            e.since = chrono::NaiveDate::from_ymd_opt(2026, 1, 1);
            e.status_rules = mlc_core::config::StatusRules {
                due_date_from: Some("X".into()),
                credit_notes_fall_overdue: true,
                order_status: [("4".to_string(), "partial".to_string())].into(),
            };
            e.salesforce = Some(SalesforceTarget {
                object: "A".into(),
                external_id_field: "B".into(),
            });
            e.mapping.insert(
                "all".into(),
                FieldMapping::Rule(MappingRule {
                    from: Some("a".into()),
                    concat: Some(vec!["b".into()]),
                    separator: Some(" ".into()),
                    template: Some("{c}".into()),
                    value: Some(serde_json::json!({"n": [1, "x"]})),
                    labels: Some(
                        [("c".to_string(), [("k".to_string(), "v".to_string())].into())].into(),
                    ),
                    trim: true,
                    map: Some([("k".to_string(), "v".to_string())].into()),
                    default: Some(serde_json::json!(0)),
                    kind: Some(ValueKind::Text),
                    max_len: Some(3),
                    round: Some(2),
                    column_type: Some("text".into()),
                }),
            );
        }
        if let Destination::Salesforce(sf) = &mut f.destination {
            sf.instance_url = Some("https://x.my.salesforce.com".into());
        }
    }
    let text = toml::to_string(&c).unwrap();
    let problems = match parse("round.toml", &text) {
        Ok(_) => panic!("the semantic checks should object to the nonsense values"),
        Err(e) => e,
    };
    for p in &problems.problems {
        assert!(
            !p.message.contains("unknown key")
                && !p.message.starts_with("expected")
                && !p.message.starts_with("missing"),
            "walk and core disagree: {p}\n{text}"
        );
    }
}

#[test]
fn a_child_table_is_not_a_flow_entity() {
    let toml = r#"
[[flows]]
id = "f"
[flows.syspro]
base_url = "https://erp.example.com"
company = "A"
operator = "OP"
password = "env:P"
[flows.destination]
kind = "monday"
token = "env:T"
[[flows.entities]]
entity = "PorMasterDetail"
change_detection = "rowversion"
"#;
    let err = mlc_config::parse("flows.toml", toml)
        .unwrap_err()
        .to_string();
    assert!(err.contains("child table of PorMasterHdr"), "{err}");
    assert!(err.contains("flows.toml:13"), "{err}");
}

#[test]
fn initial_scope_is_for_invoices_and_since_goes_with_it() {
    let ar = "entity = \"ArInvoice\"\nchange_detection = \"open-items\"\n";
    let text = edit(SF, ar, &format!("{ar}initial_scope = \"since\"\n"));
    // A missing key is reported at its table's header.
    let e = errors(&text);
    assert_problem(
        &e,
        line_of(&text, "entity = \"ArInvoice\"") - 1,
        "flows[0].entities[1].since",
        "initial_scope = \"since\" needs since = \"YYYY-MM-DD\"",
    );
    assert_eq!(e.problems.len(), 1, "{e}");
    let text = edit(SF, ar, &format!("{ar}since = \"2026-01-01\"\n"));
    assert_only(
        &text,
        "since",
        "flows[0].entities[1].since",
        "since is only used with initial_scope = \"since\"",
    );
    let cust = "entity = \"ArCustomer\"\nchange_detection = \"rowversion\"\n";
    let text = edit(SF, cust, &format!("{cust}initial_scope = \"open\"\n"));
    assert_only(
        &text,
        "initial_scope",
        "flows[0].entities[0].initial_scope",
        "needs an entity with a balance (ArInvoice, ApInvoice), not ArCustomer",
    );
    let text = edit(
        SF,
        ar,
        "entity = \"ArInvoice\"\nchange_detection = \"full-scan\"\ninitial_scope = \"open\"\n",
    );
    assert_only(
        &text,
        "initial_scope",
        "flows[0].entities[1].initial_scope",
        "a full scan reads every row at every poll",
    );
    let text = edit(
        SF,
        ar,
        &format!("{ar}initial_scope = \"since\"\nsince = \"2026-01-01\"\nsweep = \"every-poll\"\n"),
    );
    let c = parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let e = &c.flows[0].entities[1];
    assert_eq!(e.initial_scope, mlc_core::config::InitialScope::Since);
    assert_eq!(e.since, chrono::NaiveDate::from_ymd_opt(2026, 1, 1));
    assert_eq!(e.sweep, mlc_core::config::Sweep::EveryPoll);
    let text = edit(
        SF,
        ar,
        &format!("{ar}initial_scope = \"since\"\nsince = \"2026-13-01\"\n"),
    );
    assert_only(
        &text,
        "since = \"",
        "flows[0].entities[1].since",
        "\"2026-13-01\" is not a date (YYYY-MM-DD)",
    );
}

#[test]
fn status_rules_apply_to_the_entities_whose_status_they_decide() {
    let ar = "entity = \"ArInvoice\"\nchange_detection = \"open-items\"\n";
    let text = edit(
        SF,
        ar,
        &format!("{ar}status_rules = {{ due_date_from = \"PodEntryDate\", credit_notes_fall_overdue = true }}\n"),
    );
    let c = parse("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let r = &c.flows[0].entities[1].status_rules;
    assert_eq!(r.due_date_from.as_deref(), Some("PodEntryDate"));
    assert!(r.credit_notes_fall_overdue);
    let cust = "entity = \"ArCustomer\"\nchange_detection = \"rowversion\"\n";
    let text = edit(
        SF,
        cust,
        &format!("{cust}status_rules = {{ order_status = {{ \"4\" = \"partial\" }} }}\n"),
    );
    assert_only(
        &text,
        "status_rules",
        "flows[0].entities[0].status_rules.order_status",
        "order_status is for PorMasterHdr (OrderStatus codes), not ArCustomer",
    );
    let text = edit(
        SF,
        ar,
        &format!("{ar}status_rules = {{ due_date_from = \"Due Date\" }}\n"),
    );
    assert_only(
        &text,
        "status_rules",
        "flows[0].entities[1].status_rules.due_date_from",
        "cannot be a SYSPRO column name",
    );
}

#[test]
fn retry_horizon_and_resend_bounds() {
    let text = edit(
        SF,
        "max_attempts = 5\n",
        "max_attempts = 5\nretry_horizon_hours = 400\n",
    );
    let e = errors(&text);
    assert_problem(
        &e,
        line_of(&text, "retry_horizon_hours"),
        "settings.retry_horizon_hours",
        "must be from 1 to 312",
    );
    let text = edit(
        SF,
        "max_attempts = 5\n",
        "max_attempts = 5\nretry_horizon_hours = 48\nresend_unapplied_after_hours = 48\n",
    );
    assert_only(
        &text,
        "resend_unapplied_after_hours",
        "settings.resend_unapplied_after_hours",
        "must be longer than retry_horizon_hours (48)",
    );
}
