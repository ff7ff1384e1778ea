//! Monday.com GraphQL simulator on loopback, schema-validated, with limits and faults
