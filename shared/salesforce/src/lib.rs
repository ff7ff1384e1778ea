//! Salesforce client and sink: Accounts and Opportunities, in bulk, idempotent.
//!
//! [`SalesforceSink`] implements [`mlc_core::ports::Sink`] for flows whose destination is
//! Salesforce: customers become Accounts (matched by external id, else by exact legal name,
//! else created), invoices become Opportunities (upserted by the invoice's external id, linked
//! to their Account). Steady-state batches go through one Composite request per 1,000 records;
//! backfills above `bulk_threshold` through Bulk API 2.0. Every write is an upsert by external
//! id, so a retry after a lost response creates nothing twice.
//!
//! Module map:
//! - [`auth`]: OAuth 2.0 client credentials, token + `instance_url` cache, refresh
//! - [`request_builder`]: pure — events → fields, SOQL escaping, Collections / Composite bodies,
//!   Bulk CSV
//! - [`service`]: sends one request (401 refresh-once, bounded backoff, `Sforce-Limit-Info`)
//! - [`retry`]: pure classifiers reading error bodies (per record and whole call), backoff
//! - [`bulk`]: Bulk API 2.0 upsert jobs
//! - [`sink`]: [`SalesforceSink`], the port implementation; `sink::preview` shows what `write`
//!   would send beside the org's values (one SOQL query per object, nothing written)
//! - [`error`]: [`SalesforceError`] and its mapping onto `SinkError`
//!
//! Payments (`ArInvoicePay`) write nothing: an invoice's own balance change (polled as
//! `ArInvoice`) moves its Opportunity's stage and balance; the standard `Invoice` object is
//! update-only and exists in few orgs, and no flow maps payments to it yet. `ping` reports which
//! mode the org is in.

pub mod auth;
pub mod bulk;
pub mod error;
pub mod request_builder;
pub mod retry;
pub mod service;
pub mod sink;

pub use error::{Result, SalesforceError};
pub use sink::{SalesforceSink, SinkOptions, SALESFORCE_ID};

/// `https://` required, plain `http://` only for loopback.
pub(crate) fn check_url(what: &str, u: &str) -> std::result::Result<(), String> {
    let parsed = url::Url::parse(u).map_err(|e| format!("{what} {u:?}: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "{what} {u:?}: must be https:// (plain http only for loopback)"
                ))
            }
        }
        other => Err(format!("{what} {u:?}: unsupported scheme {other}")),
    }
}
