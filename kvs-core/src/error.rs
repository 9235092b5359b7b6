use std::fmt;

/// The result of every kvs call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in kvs.
///
/// Each variant names what it concerns (the table, the field, the key, the URL) so that a
/// message alone tells a user where to look. No call that returns an error has changed stored
/// data: a failed write leaves the database as the last successful commit left it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A unique index already holds this value for another record; nothing was written.
    #[error("duplicate value in unique index {table}.{field}: another record holds it")]
    Duplicate {
        /// The record table.
        table: String,
        /// The indexed field.
        field: String,
    },

    /// The registered tables and the database (or each other) disagree: two types claim one
    /// table name, a key type changed, a table is not open, a catalog entry is unreadable.
    #[error("schema error in table {table}: {reason}")]
    Schema {
        /// The table concerned (or the schema name, for an unknown `schemas` entry).
        table: String,
        /// What disagrees, for people.
        reason: String,
    },

    /// The storage is not a kvs database (a foreign redb file, or not redb at all); it was not
    /// modified.
    #[error("{location} is not a kvs database: {reason}")]
    NotKvs {
        /// The file or URL.
        location: String,
        /// What was found instead.
        reason: String,
    },

    /// A record, reader or other named item that the call needs does not exist.
    #[error("not found in {table}: {key}")]
    NotFound {
        /// The table searched.
        table: String,
        /// The key looked for, rendered for people.
        key: String,
    },

    /// A URL (or `KVS_URL`) that kvs cannot use.
    #[error("bad kvs URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Stored bytes that do not decode as the record type (for example after a field changed
    /// type), or a record that does not encode.
    #[error("cannot decode the record with key {key} in table {table}: {reason}")]
    Decode {
        /// The table.
        table: String,
        /// The record's key, rendered for people.
        key: String,
        /// The codec's message.
        reason: String,
    },

    /// Stored bytes that break kvs's format, whatever the Rust types: an index entry or a feed
    /// link pointing at a missing record, a counter or position of the wrong width, an
    /// unreadable writer or reader. Not caused by the call; `kvs check` finds such damage and
    /// `kvs check --repair` rebuilds indexes.
    #[error("corrupt data in {table}{}: {reason}", if key.is_empty() { String::new() } else { format!(" at {key}") })]
    Corrupt {
        /// The table holding the bytes.
        table: String,
        /// The key, rendered for people (empty where the damage has no one key).
        key: String,
        /// What is wrong.
        reason: String,
    },

    /// A record given without its Rust type (by the console's `import`, through
    /// [`untyped`](crate::untyped)) that does not fit the table's catalog: a field missing, a
    /// value of another kind, a field the table does not have. Nothing was written.
    #[error("a record for {table} does not fit its catalog: {reason}")]
    Invalid {
        /// The table.
        table: String,
        /// What does not fit, naming the field.
        reason: String,
    },

    /// A record that serde cannot encode.
    #[error("cannot encode a record for table {table}: {reason}")]
    Encode {
        /// The table.
        table: String,
        /// The codec's message.
        reason: String,
    },

    /// A counter would pass `u64::MAX`.
    #[error("sequence {name} would overflow: {value} + {incr}")]
    SeqOverflow {
        /// The counter's name.
        name: String,
        /// Its current value.
        value: u64,
        /// The increment asked for.
        incr: u64,
    },

    /// Another process holds the database open.
    #[error("{location} is in use by another process")]
    InUse {
        /// The file or URL.
        location: String,
    },

    /// The file is already open in this process, through another `Kvs` handle (or backend):
    /// share that handle (`Arc<Kvs>`) instead of opening the file twice.
    #[error("{location} is already open in this process: share one Kvs handle (Arc<Kvs>) rather than opening the file twice")]
    AlreadyOpen {
        /// The file.
        location: String,
    },

    /// A read-only open of a database that does not exist (a read-only open never creates
    /// one).
    #[error("{location} does not exist (a read-only open never creates a database)")]
    Missing {
        /// The file or URL.
        location: String,
    },

    /// The file was not closed cleanly (the process writing it died), or is damaged (redb's
    /// read-only open cannot tell which), and needs crash recovery, which only a read-write
    /// open does; the read-only open was refused and nothing was changed.
    #[error("{location} was not closed cleanly (its writer stopped without closing it), or is damaged, and needs crash recovery, which only a read-write open does: `kvs check --repair` recovers it (or says what is damaged)")]
    NeedsRecovery {
        /// The file.
        location: String,
    },

    /// A write on a database opened read-only (`?read_only=true`); nothing was written.
    #[error("{location} is open read-only")]
    ReadOnly {
        /// The file or URL.
        location: String,
    },

    /// The backend refused the transaction for exceeding one of its limits (for etcd:
    /// operations per transaction, request size, storage quota); nothing was written, and
    /// kvs does not split transactions to fit.
    #[error("{backend} limit {limit}: {reason}")]
    Limit {
        /// The backend.
        backend: &'static str,
        /// The limit, as the engine's operators know it (`--max-txn-ops`, ...).
        limit: String,
        /// What passed it and what to do.
        reason: String,
    },

    /// The backend could not be reached, or has no leader for now. A read can be retried; a
    /// write's outcome is unknown (it may or may not have committed). `Kvs`'s one-call writes
    /// retry it by themselves for a bounded time.
    #[error("{backend} unavailable: {reason}")]
    Unavailable {
        /// The backend.
        backend: &'static str,
        /// What failed.
        reason: String,
    },

    /// A TLS connection to a backend's server failed: the server's certificate is not one the
    /// client trusts (another CA, another host name, expired), or the server refused the
    /// client's certificate (none given, or one it does not trust). Not retried: the same
    /// connection fails the same way until the configuration changes. Nothing was written.
    #[error("TLS with {member} failed: {reason}")]
    Tls {
        /// The server, as the URL names it (`HOST:PORT`).
        member: String,
        /// What the handshake said, and what to check.
        reason: String,
    },

    /// The backend refused the credentials (a wrong user name or password, or none where the
    /// server requires them), or the user may not touch the keys the call needs (etcd's
    /// role-based access control; the reason names the key range). Not retried. Nothing was
    /// written.
    #[error("access denied: {reason}")]
    Denied {
        /// Who was refused what, and what to change; never a password.
        reason: String,
    },

    /// A concurrent transaction changed what this one read; nothing was written. Retrying
    /// the transaction is safe.
    #[error("transaction conflict: {reason}")]
    Conflict {
        /// What changed under the transaction.
        reason: String,
    },

    /// A call on a `Kvs` handle inside that handle's own `transaction` closure, on the same
    /// thread: it would wait forever for the transaction that is running. Use the closure's
    /// `tx` instead. Nothing was done.
    #[error("a call on the Kvs handle of {location} inside its own transaction: use `tx`, not the `Kvs` handle, inside `transaction` (the call would wait for the transaction that is running)")]
    InTransaction {
        /// The handle's URL.
        location: String,
    },

    /// A transaction was rolled back because its closure failed. `Kvs` hands the closure's
    /// own error back instead; a [`Backend`](crate::Backend) used directly returns this when
    /// the closure it ran returned an error.
    #[error("the transaction was rolled back: its closure failed")]
    Aborted,

    /// A call panicked where kvs could stop the panic: a closure given to
    /// [`AsyncKvs`](crate::AsyncKvs) (its transaction was rolled back, nothing of it was
    /// written), or a write run in a group of one-call writes (a `Table` impl that panics, or
    /// a bug), which was taken out of its group. The handle stays usable.
    #[error("the call panicked: {reason}")]
    Panicked {
        /// The panic's message, where it had one.
        reason: String,
    },

    /// An error of the storage engine or the operating system.
    #[error("storage error ({backend}): {source}")]
    Storage {
        /// The backend that reported it (`redb`, ...).
        backend: &'static str,
        /// The engine's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Whether retrying the same transaction may succeed: a [`Error::Conflict`] with a
    /// concurrent transaction, or a backend without a leader for a moment
    /// ([`Error::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Conflict { .. } | Error::Unavailable { .. })
    }

    /// An [`Error::Panicked`] from a panic's payload.
    pub(crate) fn panicked(payload: &(dyn std::any::Any + Send)) -> Self {
        let reason = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Error::Panicked { reason }
    }

    /// An [`Error::Schema`] for `table`.
    pub fn schema(table: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::Schema {
            table: table.into(),
            reason: reason.to_string(),
        }
    }

    /// An [`Error::Storage`] from a backend's own error.
    pub fn storage(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Storage {
            backend,
            source: source.into(),
        }
    }

    /// An [`Error::Corrupt`] in `table` at `key`.
    pub(crate) fn corrupt(
        table: impl Into<String>,
        key: impl Into<String>,
        reason: impl fmt::Display,
    ) -> Self {
        Error::Corrupt {
            table: table.into(),
            key: key.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn url(url: &str, reason: impl fmt::Display) -> Self {
        Error::Url {
            url: url.to_owned(),
            reason: reason.to_string(),
        }
    }
}
