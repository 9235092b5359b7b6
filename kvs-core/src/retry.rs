//! How one-call writes ride out conflicts and a lost leader on replicated backends.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::replay::replaying;

/// How long a one-call write keeps retrying conflicts and a lost leader.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// Runs `f` until it does not fail with [`Error::Conflict`] or [`Error::Unavailable`], for up
/// to [`RETRY_FOR`], with growing, jittered pauses. On redb neither error occurs, and this is
/// one call.
pub(crate) fn retry<R>(mut f: impl FnMut() -> Result<R>) -> Result<R> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match f() {
            // A replayed call must not block its task: it runs again at once, and the
            // backend waits before it sends the next commit (see `replay`).
            Err(e) if e.is_transient() && start.elapsed() < RETRY_FOR && replaying() => {}
            Err(e) if e.is_transient() && start.elapsed() < RETRY_FOR => {
                // Jitter from the clock, so that writers that collided do not collide again.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                std::thread::sleep(pause.mul_f64(0.5 + f64::from(nanos % 1000) / 1000.0));
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}
