//! SYSPRO simulator: e.net REST and OData v4 on loopback, with faults
