//! SQLite adapters for every store and a durable queue: the default local runtime
