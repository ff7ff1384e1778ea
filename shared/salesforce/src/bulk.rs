//! Bulk API 2.0 upsert jobs for backfills: CSV per object, split under the per-job upload
//! limit, status polled with capped backoff, results read back by external id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::error::{Result, SalesforceError};
use crate::request_builder::{csv_field, data_path, parse_csv, split_bulk_error};
use crate::service::{ReqBody, Service};

/// Polling and sizing of Bulk jobs.
#[derive(Debug, Clone, Copy)]
pub struct BulkSettings {
    /// First wait between status polls.
    pub poll_interval: Duration,
    /// Longest wait between status polls.
    pub poll_max: Duration,
    /// Give up waiting after this long (records come back as retries).
    pub max_wait: Duration,
    /// Largest CSV upload per job (Salesforce allows 100 MB raw).
    pub max_job_bytes: usize,
}

/// What happened to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowResult {
    /// Written.
    Ok {
        /// Salesforce Id.
        id: String,
        /// Created, not updated.
        created: bool,
    },
    /// Refused.
    Failed {
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// Not processed (job failed, aborted, or still running when we stopped waiting).
    Unprocessed(String),
}

/// One upsert load: header (external-id column first) and rows keyed by external id.
#[derive(Debug, Clone)]
pub struct Load {
    /// sObject.
    pub object: String,
    /// External-id field.
    pub ext_field: String,
    /// Column names; `header[0]` is the external-id field.
    pub header: Vec<String>,
    /// `(external id, CSV values in header order)`.
    pub rows: Vec<(String, Vec<String>)>,
}

fn line(values: &[String]) -> String {
    let mut l = values
        .iter()
        .map(|v| csv_field(v))
        .collect::<Vec<_>>()
        .join(",");
    l.push('\n');
    l
}

/// Runs a load as one or more jobs, one after the other. Returns a result per external id.
pub async fn upsert(
    svc: &Service,
    version: &str,
    load: &Load,
    s: &BulkSettings,
) -> Result<HashMap<String, RowResult>> {
    let head = line(&load.header);
    let mut chunks: Vec<(String, Vec<String>)> = Vec::new();
    let mut cur = head.clone();
    let mut exts = Vec::new();
    for (ext, vals) in &load.rows {
        let l = line(vals);
        if !exts.is_empty() && cur.len() + l.len() > s.max_job_bytes {
            chunks.push((
                std::mem::replace(&mut cur, head.clone()),
                std::mem::take(&mut exts),
            ));
        }
        cur.push_str(&l);
        exts.push(ext.clone());
    }
    if !exts.is_empty() {
        chunks.push((cur, exts));
    }
    let mut out = HashMap::new();
    for (csv, exts) in chunks {
        let res = run_job(svc, version, load, csv, exts.len() as u64, s).await?;
        for e in exts {
            let r = res.get(&e).cloned().unwrap_or_else(|| {
                RowResult::Unprocessed("the job reported nothing for this record".into())
            });
            out.insert(e, r);
        }
    }
    Ok(out)
}

/// Which result lists a finished job needs downloaded, from its final status.
///
/// Every list costs an API call, so a list the status proves empty is not fetched: no
/// `failedResults` when `numberRecordsFailed` is 0, no `unprocessedrecords` when a
/// `JobComplete` job processed every uploaded row. `successfulResults` is fetched whenever a
/// row succeeded: it carries each record's Salesforce Id (kept as its destination id; Account
/// Ids link later Composite invoice writes) and whether it was created. When the counts are
/// missing or do not add up, every list is fetched; rows that no list mentions come back as
/// unprocessed (retried), never as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downloads {
    /// `GET …/successfulResults/`.
    pub successful: bool,
    /// `GET …/failedResults/`.
    pub failed: bool,
    /// `GET …/unprocessedrecords/`.
    pub unprocessed: bool,
}

impl Downloads {
    /// Decides from the job's final `state`, its counts (`None` when absent from the status)
    /// and the number of rows uploaded.
    pub fn plan(state: &str, processed: Option<u64>, failed: Option<u64>, uploaded: u64) -> Self {
        let (Some(processed), Some(failed)) = (processed, failed) else {
            return Downloads::all();
        };
        if failed > processed || processed > uploaded {
            return Downloads::all();
        }
        Downloads {
            successful: processed > failed,
            failed: failed > 0,
            unprocessed: state != "JobComplete" || processed < uploaded,
        }
    }

    fn all() -> Self {
        Downloads {
            successful: true,
            failed: true,
            unprocessed: true,
        }
    }
}

async fn run_job(
    svc: &Service,
    version: &str,
    load: &Load,
    csv: String,
    uploaded: u64,
    s: &BulkSettings,
) -> Result<HashMap<String, RowResult>> {
    let base = format!("{}/jobs/ingest", data_path(version));
    let created = svc
        .call(
            Method::POST,
            &base,
            &ReqBody::Json(json!({
                "object": load.object,
                "operation": "upsert",
                "externalIdFieldName": load.ext_field,
                "contentType": "CSV",
                "lineEnding": "LF",
                "columnDelimiter": "COMMA",
            })),
        )
        .await?;
    if created.status >= 300 {
        return Err(SalesforceError::Rejected {
            link: created.link(),
        });
    }
    let Some(id) = created
        .json()
        .get("id")
        .and_then(|v| v.as_str())
        .map(String::from)
    else {
        return Err(SalesforceError::Rejected {
            link: created.link(),
        });
    };
    let job = format!("{base}/{id}");
    let up = svc
        .call(Method::PUT, &format!("{job}/batches"), &ReqBody::Csv(csv))
        .await?;
    if up.status >= 300 {
        return Err(SalesforceError::Rejected { link: up.link() });
    }
    let done = svc
        .call(
            Method::PATCH,
            &job,
            &ReqBody::Json(json!({"state": "UploadComplete"})),
        )
        .await?;
    if done.status >= 300 {
        return Err(SalesforceError::Rejected { link: done.link() });
    }
    let started = Instant::now();
    let mut wait = s.poll_interval;
    let info = loop {
        tokio::time::sleep(wait).await;
        let r = svc.call(Method::GET, &job, &ReqBody::None).await?;
        let info = r.json();
        let state = info
            .get("state")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        if matches!(state.as_str(), "JobComplete" | "Failed" | "Aborted") {
            break info;
        }
        if started.elapsed() >= s.max_wait {
            tracing::warn!(job = %id, "bulk job still {state} after {:?}: handing its records back", s.max_wait);
            return Ok(HashMap::new());
        }
        wait = (wait * 2).min(s.poll_max);
    };
    let state = info
        .get("state")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let want = Downloads::plan(
        &state,
        info.get("numberRecordsProcessed").and_then(|v| v.as_u64()),
        info.get("numberRecordsFailed").and_then(|v| v.as_u64()),
        uploaded,
    );
    let mut out = HashMap::new();
    let read = |rows: Vec<Vec<String>>| -> (Vec<String>, Vec<Vec<String>>) {
        let mut it = rows.into_iter();
        let header = it.next().unwrap_or_default();
        (header, it.collect())
    };
    if want.successful {
        let r = svc
            .call(
                Method::GET,
                &format!("{job}/successfulResults/"),
                &ReqBody::None,
            )
            .await?;
        let (h, rows) = read(parse_csv(&r.body));
        let (ix_id, ix_created, ix_ext) = (
            h.iter().position(|c| c == "sf__Id"),
            h.iter().position(|c| c == "sf__Created"),
            h.iter().position(|c| c == &load.ext_field),
        );
        if let (Some(i), Some(e)) = (ix_id, ix_ext) {
            for row in rows {
                let (Some(id), Some(ext)) = (row.get(i), row.get(e)) else {
                    continue;
                };
                let created = ix_created
                    .and_then(|c| row.get(c))
                    .map(|v| v == "true")
                    .unwrap_or(false);
                out.insert(
                    ext.clone(),
                    RowResult::Ok {
                        id: id.clone(),
                        created,
                    },
                );
            }
        }
    }
    if want.failed {
        let r = svc
            .call(
                Method::GET,
                &format!("{job}/failedResults/"),
                &ReqBody::None,
            )
            .await?;
        let (h, rows) = read(parse_csv(&r.body));
        let (ix_err, ix_ext) = (
            h.iter().position(|c| c == "sf__Error"),
            h.iter().position(|c| c == &load.ext_field),
        );
        if let (Some(i), Some(e)) = (ix_err, ix_ext) {
            for row in rows {
                let (Some(err), Some(ext)) = (row.get(i), row.get(e)) else {
                    continue;
                };
                let (code, message) = split_bulk_error(err);
                out.insert(ext.clone(), RowResult::Failed { code, message });
            }
        }
    }
    if want.unprocessed {
        let r = svc
            .call(
                Method::GET,
                &format!("{job}/unprocessedrecords/"),
                &ReqBody::None,
            )
            .await?;
        let (h, rows) = read(parse_csv(&r.body));
        if let Some(e) = h.iter().position(|c| c == &load.ext_field) {
            for row in rows {
                if let Some(ext) = row.get(e) {
                    out.insert(
                        ext.clone(),
                        RowResult::Unprocessed(format!(
                            "bulk job {id} ended {state} before this record"
                        )),
                    );
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Downloads;

    #[test]
    fn a_clean_job_downloads_only_its_successes() {
        let d = Downloads::plan("JobComplete", Some(500), Some(0), 500);
        assert!(d.successful && !d.failed && !d.unprocessed, "{d:?}");
    }

    #[test]
    fn failures_and_shortfalls_are_downloaded() {
        let d = Downloads::plan("JobComplete", Some(500), Some(3), 500);
        assert!(d.successful && d.failed && !d.unprocessed, "{d:?}");
        // Every row failed: nothing to read from successfulResults.
        let d = Downloads::plan("JobComplete", Some(500), Some(500), 500);
        assert!(!d.successful && d.failed && !d.unprocessed, "{d:?}");
        // Stopped part-way: the rest is in unprocessedrecords.
        let d = Downloads::plan("Failed", Some(200), Some(0), 500);
        assert!(d.successful && !d.failed && d.unprocessed, "{d:?}");
        let d = Downloads::plan("Aborted", Some(0), Some(0), 500);
        assert!(!d.successful && !d.failed && d.unprocessed, "{d:?}");
    }

    #[test]
    fn counts_that_do_not_add_up_download_everything() {
        let all = Downloads {
            successful: true,
            failed: true,
            unprocessed: true,
        };
        assert_eq!(Downloads::plan("JobComplete", None, Some(0), 500), all);
        assert_eq!(Downloads::plan("JobComplete", Some(500), None, 500), all);
        assert_eq!(Downloads::plan("JobComplete", Some(10), Some(11), 500), all);
        assert_eq!(Downloads::plan("JobComplete", Some(501), Some(0), 500), all);
    }
}
