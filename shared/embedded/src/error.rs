//! Errors of opening a database, and how SQLite errors map onto [`PortError`] kinds.

use std::path::PathBuf;

use mlc_core::PortError;

/// Result of opening or preparing an embedded store.
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong when opening a store or a queue. Port calls return [`PortError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The directory that should hold the database could not be created.
    #[error("cannot create directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed while opening or preparing the database.
    #[error("sqlite database {}: {context}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        context: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database could not be switched to WAL mode (e.g. a network file system).
    #[error("sqlite database {}: journal mode is {mode:?}, wal is required", path.display())]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },
    /// The file was written by a newer build.
    #[error(
        "sqlite database {}: {component} schema version {found} is newer than this build supports ({supported})",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// `store` or `queue`.
        component: &'static str,
        /// Version found in the file.
        found: i64,
        /// Version this build writes.
        supported: i64,
    },
    /// Options that cannot work (e.g. a max receive count of 0).
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

impl From<Error> for PortError {
    fn from(e: Error) -> Self {
        let transient = matches!(&e, Error::Sqlite { source, .. } if is_transient(source));
        let message = e.to_string();
        if transient {
            PortError::transient(message, e)
        } else {
            PortError::permanent(message, e)
        }
    }
}

/// True for SQLite errors that a later retry may not hit: locks held by other connections,
/// I/O hiccups, a full disk.
pub(crate) fn is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(
            C::DatabaseBusy | C::DatabaseLocked | C::SystemIoFailure | C::DiskFull | C::OutOfMemory
        )
    )
}

/// Maps a SQLite error of a port call; `context` names the call.
pub(crate) fn sql(context: &'static str) -> impl FnOnce(rusqlite::Error) -> PortError {
    move |e| {
        let message = format!("sqlite {context}");
        if is_transient(&e) {
            PortError::transient(message, e)
        } else {
            PortError::permanent(message, e)
        }
    }
}
