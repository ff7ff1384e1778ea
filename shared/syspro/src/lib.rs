//! SYSPRO client: OData and e.net reads, sessions, change detection
