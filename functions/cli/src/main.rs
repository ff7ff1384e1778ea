//! The ml-connector command line: sync, ping, status, audit, replay, demo

fn main() {}
