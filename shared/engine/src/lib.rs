//! Pipeline engine: poll, sink and replay over the ports
