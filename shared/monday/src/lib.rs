//! Monday.com client and sink: boards fed within every limit
