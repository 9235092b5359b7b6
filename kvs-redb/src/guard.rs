//! Errors instead of panics: around every call into redb ([`guard`]), and when a scan's
//! visitor calls back into the transaction it scans ([`reentered`]).

use kvs_core::{Error, Result};

/// Runs a call into redb, turning a panic into [`Error::Storage`].
///
/// redb 4.6 panics on some pages altered outside it (docs/RELIABILITY.md has the figures);
/// kvs promises an error, never a panic, for bad input, a corrupted file included. The closure
/// holds only kvs's own code and redb's, never an application's (a transaction's closure runs
/// outside any guard), so no application panic is swallowed here.
pub(crate) fn guard<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Err(Error::storage(
            "redb",
            format!("redb failed on a page it could not read (is the file corrupted?): {what}"),
        ))
    })
}

/// [`guard`] for opening a file: a panic means a file that is not a (sound) kvs database.
pub(crate) fn guard_open<R>(location: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
    guard(f).map_err(|e| match e {
        Error::Storage { source, .. }
            if source.to_string().starts_with("redb failed on a page") =>
        {
            Error::NotKvs {
                location: location.to_owned(),
                reason: source.to_string(),
            }
        }
        other => other,
    })
}

/// A scan's visitor called back into the transaction it scans: an error, not a panic.
pub(crate) fn reentered() -> Error {
    Error::storage(
        "redb",
        "a scan's visitor called back into the transaction being scanned",
    )
}
