//! Salesforce client and sink: Accounts and Opportunities, in bulk, idempotent
