//! Calls replayed on an async task: how `AsyncKvs` runs a call of the sync
//! core on a backend whose requests can be awaited (etcd), with no thread of its own.
//!
//! The call's one implementation, `Kvs`'s, runs on the caller's task with the backend's
//! requests answered from a log ([`Replay::run`]). At the first request the log does not
//! hold, the backend stops the run (every request from there on fails, and the run's result
//! is thrown away); the task then sends that request and awaits its answer
//! ([`Replay::fetch`]), which joins the log, and runs the call again from the start. Every
//! run reads the same answers in the same order, so it takes the same path as far as the log
//! goes, one request further each time. A commit is sent once, and later runs read its
//! answer from the log. A call of k round trips runs k + 1 times; each run is CPU work of
//! microseconds against a round trip of a millisecond. A call that needs more than
//! `MAX_ROUND_TRIPS` (16) round trips and has sent no commit (a read of thousands of records,
//! page after page, whose runs would decode the early pages again and again) is run anew,
//! once, on tokio's blocking pool.
//!
//! While a run is under way, the core takes no turn that would block the task: a one-call
//! write that meets a conflict runs again at once instead of sleeping (the backend pauses
//! before it sends the next attempt's first request). `AsyncKvs::seq` waits in its counter's lane as a task
//! (`Counters::seq_async`), and replays only its batch's commit.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;

use crate::error::Result;

/// A backend's log of one replayed call (see the module docs): what
/// [`Backend::replay`](crate::Backend::replay) hands out, for one call of `AsyncKvs`.
pub trait Replay: Send {
    /// Runs `f` on this thread, with the backend's requests answered from the log.
    fn run(&mut self, f: &mut dyn FnMut());

    /// Whether the last run met a request the log does not hold: its result is to be thrown
    /// away, and [`Replay::fetch`] sends that request.
    fn missing(&self) -> bool;

    /// Whether the log holds a commit that was sent: the call must then finish as a
    /// replayed one (running it anew elsewhere could commit twice).
    fn sent_commit(&self) -> bool;

    /// Sends the request the last run stopped at and keeps its answer (an error included)
    /// for the next run. An error here ends the call with it.
    fn fetch(&mut self) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>>;
}

/// The round trips after which a replayed call that has sent no commit moves to the blocking
/// pool.
#[cfg(feature = "tokio")]
pub(crate) const MAX_ROUND_TRIPS: usize = 16;

thread_local! {
    static REPLAYING: Cell<bool> = const { Cell::new(false) };
}

/// Whether the running call is a replayed one (so nothing in it may block the thread).
pub(crate) fn replaying() -> bool {
    REPLAYING.with(Cell::get)
}

/// Runs `f` as a replayed call: [`replaying`] says so inside it.
#[cfg(feature = "tokio")]
pub(crate) fn as_replayed<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            REPLAYING.with(|r| r.set(self.0));
        }
    }
    let _reset = Reset(REPLAYING.with(|r| r.replace(true)));
    f()
}
