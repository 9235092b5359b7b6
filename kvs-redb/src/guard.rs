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
    caught(f).unwrap_or_else(|what| Err(Error::storage("redb", failed_on_a_page(&what))))
}

/// [`guard`] for opening a file: a panic means a file that is not a (sound) kvs database.
pub(crate) fn guard_open<R>(location: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
    caught(f).unwrap_or_else(|what| {
        Err(Error::NotKvs {
            location: location.to_owned(),
            reason: failed_on_a_page(&what),
        })
    })
}

/// Runs `f`, handing back the message of a panic apart from `f`'s own result, so that callers
/// tell the two apart by type, not by an error's text.
fn caught<R>(f: impl FnOnce() -> Result<R>) -> std::result::Result<Result<R>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned())
    })
}

fn failed_on_a_page(what: &str) -> String {
    format!("redb failed on a page it could not read (is the file corrupted?): {what}")
}

/// A scan's visitor called back into the transaction it scans: an error, not a panic.
pub(crate) fn reentered() -> Error {
    Error::storage(
        "redb",
        "a scan's visitor called back into the transaction being scanned",
    )
}
