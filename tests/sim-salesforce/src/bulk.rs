//! Bulk API 2.0 ingest jobs: create, one CSV upload, `UploadComplete`, status polls, results.

use serde_json::{json, Map, Value};

use crate::org::{Data, FieldType, WriteResult};

/// Largest upload accepted per job (raw bytes), as Salesforce documents.
pub const MAX_UPLOAD_BYTES: usize = 100 * 1024 * 1024;

/// Parses RFC 4180 CSV (quoted fields, doubled quotes, LF or CRLF).
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_quotes = true,
            '"' => return Err("stray quote inside an unquoted field".into()),
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            c => field.push(c),
        }
    }
    if in_quotes {
        return Err("unterminated quoted field".into());
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// Quotes one CSV field.
pub fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn csv_line(fields: &[String]) -> String {
    let mut l = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    l.push('\n');
    l
}

/// One ingest job.
#[derive(Debug, Clone)]
pub struct Job {
    pub(crate) id: String,
    pub(crate) object: String,
    pub(crate) operation: String,
    pub(crate) ext_field: Option<String>,
    pub(crate) line_ending: String,
    pub(crate) state: String,
    pub(crate) data: Option<String>,
    pub(crate) polls_left: u32,
    pub(crate) processed: u64,
    pub(crate) failed: u64,
    pub(crate) success_csv: String,
    pub(crate) failed_csv: String,
    pub(crate) unprocessed_csv: String,
    pub(crate) api_version: f64,
    /// Why a `Failed` job stopped.
    pub(crate) error_message: Option<String>,
}

impl Job {
    /// The job info JSON.
    pub fn info(&self) -> Value {
        let mut info = json!({
            "id": self.id,
            "operation": self.operation,
            "object": self.object,
            "createdById": "005SIM000000001AAA",
            "createdDate": "2026-01-01T00:00:00.000+0000",
            "systemModstamp": "2026-01-01T00:00:00.000+0000",
            "state": self.state,
            "externalIdFieldName": self.ext_field,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": self.api_version,
            "jobType": "V2Ingest",
            "lineEnding": self.line_ending,
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": self.processed,
            "numberRecordsFailed": self.failed,
            "retries": 0,
            "totalProcessingTime": 0,
        });
        if let (Some(m), Some(o)) = (&self.error_message, info.as_object_mut()) {
            o.insert("errorMessage".into(), json!(m));
        }
        info
    }
}

/// Runs an uploaded job against the data. Returns nothing: results land on the job.
///
/// With `stop_after`, the job stops after that many rows and ends `Failed`, the rows it never
/// reached listed in `unprocessedrecords` (what Salesforce does when a job fails part-way:
/// rows already processed stay written and counted in `numberRecordsProcessed`).
pub fn process(
    job: &mut Job,
    data: &mut Data,
    record_fault: &mut dyn FnMut(&str) -> Option<(String, String)>,
    stop_after: Option<u64>,
) {
    let text = job.data.take().unwrap_or_default();
    let rows = match parse_csv(&text) {
        Ok(r) => r,
        Err(e) => {
            job.state = "Failed".into();
            job.unprocessed_csv = text;
            tracing::debug!("bulk job {} failed: {e}", job.id);
            return;
        }
    };
    let Some((header, body_rows)) = rows.split_first() else {
        job.state = "JobComplete".into();
        return;
    };
    let mut ok = csv_line(
        &["sf__Id".to_string(), "sf__Created".to_string()]
            .into_iter()
            .chain(header.iter().cloned())
            .collect::<Vec<_>>(),
    );
    let mut bad = csv_line(
        &["sf__Id".to_string(), "sf__Error".to_string()]
            .into_iter()
            .chain(header.iter().cloned())
            .collect::<Vec<_>>(),
    );
    let def = data.object(&job.object).cloned();
    let ext_field = job.ext_field.clone().unwrap_or_default();
    let mut unprocessed = csv_line(header);
    let mut stopped = false;
    for row in body_rows {
        if row.len() == 1 && row[0].is_empty() {
            continue;
        }
        if stopped || stop_after.is_some_and(|n| job.processed >= n) {
            stopped = true;
            unprocessed.push_str(&csv_line(row));
            continue;
        }
        job.processed += 1;
        let mut body = Map::new();
        let mut ext_value = String::new();
        let mut id_value = String::new();
        let mut err: Option<String> = None;
        if row.len() != header.len() {
            err = Some(format!(
                "TOO_MANY_COLUMNS:the row has {} values for {} columns:--",
                row.len(),
                header.len()
            ));
        }
        for (col, val) in header.iter().zip(row.iter()) {
            if col == &ext_field {
                ext_value = val.clone();
            }
            if col == "Id" {
                id_value = val.clone();
                continue;
            }
            if val.is_empty() {
                continue; // Bulk 2.0: empty means "leave as is".
            }
            if let Some((rel, f)) = col.split_once('.') {
                body.insert(rel.to_string(), json!({ f: val }));
                continue;
            }
            let kind = def.as_ref().and_then(|d| d.field(col)).map(|f| f.kind);
            let v = if val == "#N/A" {
                Value::Null
            } else {
                match kind {
                    Some(FieldType::Number) => val
                        .parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .unwrap_or_else(|| Value::String(val.clone())),
                    Some(FieldType::Bool) => match val.to_ascii_lowercase().as_str() {
                        "true" | "1" => Value::Bool(true),
                        "false" | "0" => Value::Bool(false),
                        _ => Value::String(val.clone()),
                    },
                    _ => Value::String(val.clone()),
                }
            };
            body.insert(col.clone(), v);
        }
        if err.is_none() {
            if let Some((code, msg)) = record_fault(&ext_value) {
                err = Some(format!("{code}:{msg}:--"));
            }
        }
        let result = match err {
            Some(e) => Err(e),
            None => {
                let r = match job.operation.as_str() {
                    "upsert" => data.upsert(&job.object, &ext_field, &ext_value, &body),
                    "update" => data.update(&job.object, &id_value, &body),
                    other => WriteResult::Err(crate::org::RecErr::new(
                        "INVALID_OPERATION",
                        format!("operation {other} is not simulated"),
                        &[],
                    )),
                };
                match r {
                    WriteResult::Ok { id, created } => Ok((id, created)),
                    WriteResult::Multiple(_) => Err(format!(
                        "DUPLICATE_EXTERNAL_ID:more than one record found for external id field: {ext_value}:{ext_field} --"
                    )),
                    WriteResult::Err(e) => Err(format!("{}:{}:{} --", e.code, e.message, e.fields.join(","))),
                }
            }
        };
        match result {
            Ok((id, created)) => ok.push_str(&csv_line(
                &[id, created.to_string()]
                    .into_iter()
                    .chain(row.iter().cloned())
                    .collect::<Vec<_>>(),
            )),
            Err(e) => {
                job.failed += 1;
                bad.push_str(&csv_line(
                    &[String::new(), e]
                        .into_iter()
                        .chain(row.iter().cloned())
                        .collect::<Vec<_>>(),
                ));
            }
        }
    }
    job.success_csv = ok;
    job.failed_csv = bad;
    job.unprocessed_csv = unprocessed;
    if stopped {
        job.state = "Failed".into();
        job.error_message = Some("InternalServerError : the job was stopped".into());
    } else {
        job.state = "JobComplete".into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip() {
        let rows = parse_csv("a,\"b,\"\"c\"\"\"\r\n\"x\ny\",\n").unwrap();
        assert_eq!(rows, vec![vec!["a", "b,\"c\""], vec!["x\ny", ""]]);
    }
}
