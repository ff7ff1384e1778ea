//! Loads and validates flow configuration (TOML) with file, line and field
