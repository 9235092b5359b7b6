//! Byte buffers reused from call to call on one thread: the encoded value of a lookup and the
//! record keys it collects live in buffers that an earlier call on the thread let go of, so
//! that a read's hot path pays no allocation for them (a `malloc` and a `free` cost a unique
//! lookup about as much as its own layer does).

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

/// How many buffers a thread keeps.
const KEPT: usize = 4;

/// The largest buffer kept: one grown past it (a lookup of more than about a thousand keys)
/// is freed. A thread keeps at most `KEPT` × 16 KiB, so that tokio's blocking pool (up to
/// 512 threads) keeps at most 32 MiB.
const LARGEST: usize = 16 * 1024;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty byte buffer, kept by this thread for the next call when dropped.
pub(crate) struct Scratch(Vec<u8>);

impl Scratch {
    /// An empty buffer, with room for at least `capacity` bytes.
    #[inline]
    pub(crate) fn with_capacity(capacity: usize) -> Scratch {
        let kept = FREE
            .try_with(|free| free.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten();
        let mut buf = kept.unwrap_or_default();
        buf.reserve(capacity);
        Scratch(buf)
    }

    /// An empty buffer.
    #[inline]
    pub(crate) fn new() -> Scratch {
        Scratch::with_capacity(0)
    }
}

impl Drop for Scratch {
    #[inline]
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() == 0 || buf.capacity() > LARGEST {
            return;
        }
        buf.clear();
        // A thread that is ending has no list left: the buffer is freed.
        let _ = FREE.try_with(|free| {
            if let Ok(mut free) = free.try_borrow_mut() {
                if free.len() < KEPT {
                    free.push(buf);
                }
            }
        });
    }
}

impl Deref for Scratch {
    type Target = Vec<u8>;
    #[inline]
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Scratch {
    #[inline]
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    #[test]
    fn a_buffer_comes_back_empty_with_its_room() {
        let mut a = Scratch::new();
        a.extend_from_slice(b"some key");
        let room = a.capacity();
        drop(a);
        let b = Scratch::new();
        assert!(b.is_empty());
        assert_eq!(b.capacity(), room);
    }

    #[test]
    fn buffers_in_use_at_once_are_distinct() {
        let mut a = Scratch::new();
        let mut b = Scratch::new();
        a.push(1);
        b.push(2);
        assert_eq!((a.as_slice(), b.as_slice()), (&[1][..], &[2][..]));
    }

    #[test]
    fn a_very_large_buffer_is_not_kept() {
        let mut a = Scratch::with_capacity(super::LARGEST + 1);
        a.push(0);
        drop(a);
        assert!(Scratch::new().capacity() <= super::LARGEST);
    }
}
