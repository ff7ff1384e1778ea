//! Salesforce org simulator on loopback, with faults
