//! Shared helpers: a simulator, a source pointed at it, and a full read.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mlc_core::config::{ReadPath, SysproAuth, SysproConnection};
use mlc_core::ports::{Secrets, Source, SourceError};
use mlc_core::query::{Filter, SourceQuery};
use mlc_core::secret::{SecretRef, SecretString};
use mlc_core::{Entity, PortResult, Record, RecordKey};
use mlc_syspro::{RetryPolicy, SysproSource};
use sim_syspro::{SimHandle, SimOptions, SysproSim};

pub const PASSWORD: &str = "sim-password";

/// Secrets from a fixed value.
pub struct FixedSecrets(pub String);

#[async_trait]
impl Secrets for FixedSecrets {
    async fn get(&self, _r: &SecretRef) -> PortResult<SecretString> {
        Ok(SecretString::from(self.0.clone()))
    }
    async fn invalidate(&self, _r: &SecretRef) {}
}

pub async fn sim(opts: SimOptions) -> SimHandle {
    SysproSim::start(opts).await.expect("simulator starts")
}

pub fn conn(sim: &SimHandle, read_path: ReadPath) -> SysproConnection {
    let o = sim.options();
    SysproConnection {
        base_url: sim.base_url(),
        odata_path: o.odata_path.clone(),
        enet_path: o.enet_path.clone(),
        company: o.company_id.clone(),
        auth: match read_path {
            ReadPath::Odata => SysproAuth::Basic,
            ReadPath::Enet => SysproAuth::Session,
        },
        read_path,
        operator: "ADMIN".into(),
        password: SecretRef::Env("SYSPRO_TEST_PASSWORD".into()),
        company_password: None,
        terms_source: Default::default(),
        terms_days: sim.terms_days(),
        default_due_days: 30,
        timeout_secs: 5,
        page_size: 7,
    }
}

pub fn source_with(sim: &SimHandle, read_path: ReadPath, password: &str) -> SysproSource {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    SysproSource::new(
        &conn(sim, read_path),
        Arc::new(FixedSecrets(password.into())),
        http,
    )
    .expect("source")
    .with_retry_policy(RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(5),
        cap: Duration::from_millis(40),
    })
}

pub fn source(sim: &SimHandle, read_path: ReadPath) -> SysproSource {
    source_with(sim, read_path, PASSWORD)
}

pub fn query(entity: Entity, fields: &[&str], filter: Option<Filter>, page: u32) -> SourceQuery {
    SourceQuery {
        entity,
        fields: fields.iter().map(|s| s.to_string()).collect(),
        filter,
        page_size: page,
    }
}

/// Reads every page; panics on a source error.
pub async fn read_all(src: &SysproSource, q: &SourceQuery) -> Vec<Record> {
    try_read_all(src, q).await.expect("read")
}

pub async fn try_read_all(src: &SysproSource, q: &SourceQuery) -> Result<Vec<Record>, SourceError> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..100_000 {
        let page = src.read_page(q, cursor.as_ref()).await?;
        out.extend(page.rows);
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok(out),
        }
    }
    panic!("paging does not end");
}

/// Key identity of a row (parts without trailing blanks).
pub fn key_of(entity: Entity, r: &Record) -> String {
    let parts: Vec<String> = entity
        .key_fields()
        .iter()
        .map(|k| match &r[*k] {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        })
        .collect();
    RecordKey::composite(&parts).id()
}

pub fn keys(entity: Entity, rows: &[Record]) -> Vec<String> {
    rows.iter().map(|r| key_of(entity, r)).collect()
}

pub fn snapshot_keys(sim: &SimHandle, entity: Entity) -> BTreeSet<String> {
    sim.snapshot()[entity.as_str()]
        .iter()
        .map(|r| key_of(entity, r))
        .collect()
}

pub const BOTH: [ReadPath; 2] = [ReadPath::Odata, ReadPath::Enet];
