//! How one-call writes ride out conflicts and a lost leader on replicated backends.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::replay::replaying;

/// How long a one-call write keeps retrying conflicts and a lost leader (a backend that
/// retries on its own, as etcd's replayed calls do, keeps the same limit).
pub const RETRY_FOR: Duration = Duration::from_secs(30);

/// The pause before the attempt that follows `failures` failed ones in a row (at least 1):
/// growing from 1 ms to 200 ms, jittered from the clock (0.5× to 1.5×) so that writers that
/// collided do not collide again.
pub fn retry_pause(failures: u32) -> Duration {
    let pause = Duration::from_millis(1 << failures.saturating_sub(1).min(8))
        .min(Duration::from_millis(200));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    pause.mul_f64(0.5 + f64::from(nanos % 1000) / 1000.0)
}

/// Runs `f` until it does not fail with [`Error::Conflict`] or [`Error::Unavailable`], for up
/// to [`RETRY_FOR`], pausing [`retry_pause`] between attempts. On redb neither error occurs,
/// and this is one call.
pub(crate) fn retry<R>(mut f: impl FnMut() -> Result<R>) -> Result<R> {
    let start = Instant::now();
    let mut failures = 0;
    loop {
        match f() {
            // A replayed call must not block its task: it runs again at once, and the
            // backend pauses before it sends the next attempt's first request (see `replay`).
            Err(e) if e.is_transient() && start.elapsed() < RETRY_FOR && replaying() => {}
            Err(e) if e.is_transient() && start.elapsed() < RETRY_FOR => {
                failures += 1;
                std::thread::sleep(retry_pause(failures));
            }
            other => return other,
        }
    }
}
