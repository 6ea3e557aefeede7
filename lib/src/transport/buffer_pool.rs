//! Storage a busy thread reuses and an idle connection does not hold.
//!
//! A connection lets its batch storage and write buffer go whenever it is
//! caught up, so ten thousand quiet connections hold none. Letting go used
//! to mean freeing, and a connection that answers one request at a time
//! (a 50 × 1 load) is caught up after every request: it allocated and
//! freed the same few buffers per request. Now they go back to a small
//! stash on the thread that let them go, and the next connection to need
//! one on that thread takes it from there: the same memory goes round, and
//! only a thread's stash (a few KiB) stays allocated when everything is
//! idle.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Buffers kept per kind and thread at most: as many as a thread's
/// connections have in use at once in a batch, on a busy thread; more
/// would only hold memory.
const STASH: usize = 16;

/// Storage that can be stashed: emptied first, and only while small
/// enough that keeping it around is cheap.
pub(crate) trait Reusable: Default + 'static {
    /// This kind's stash on the current thread.
    fn stash() -> &'static LocalKey<RefCell<Vec<Self>>>;

    /// Empties `self` for the next user; `false` if it should be freed
    /// instead (too large, or still shared).
    fn reset(&mut self) -> bool;
}

/// Storage from this thread's stash, or new (empty) storage.
pub(crate) fn take<T: Reusable>() -> T {
    T::stash()
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Hands `item` back to this thread's stash (if it has room), or frees it.
pub(crate) fn give<T: Reusable>(mut item: T) {
    if !item.reset() {
        return;
    }
    // A thread being torn down, or a stash in use (never, as nothing here
    // calls back), simply frees it.
    let _ = T::stash().try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut()
            && s.len() < STASH
        {
            s.push(item);
        }
    });
}

/// Declares the stash of a collection type whose capacity is bounded by
/// `$max` elements when it is stashed.
macro_rules! reusable_collection {
    ($ty:ty, $max:expr) => {
        impl $crate::transport::buffer_pool::Reusable for $ty {
            fn stash() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Self>>> {
                thread_local! {
                    static STASH: std::cell::RefCell<Vec<$ty>> =
                        const { std::cell::RefCell::new(Vec::new()) };
                }
                &STASH
            }

            fn reset(&mut self) -> bool {
                self.clear();
                self.capacity() > 0 && self.capacity() <= $max
            }
        }
    };
}
pub(crate) use reusable_collection;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Probe(Vec<u8>);
    reusable_collection!(Vec<u16>, 8);

    impl Reusable for Probe {
        fn stash() -> &'static LocalKey<RefCell<Vec<Self>>> {
            thread_local! {
                static S: RefCell<Vec<Probe>> = const { RefCell::new(Vec::new()) };
            }
            &S
        }
        fn reset(&mut self) -> bool {
            self.0.clear();
            true
        }
    }

    #[test]
    fn what_is_given_back_is_taken_again_empty() {
        let mut v = Probe::default();
        v.0.extend_from_slice(b"abc");
        let at = v.0.as_ptr();
        give(v);
        let again: Probe = take();
        assert_eq!(again.0.as_ptr(), at, "the same allocation");
        assert!(again.0.is_empty());
        let fresh: Probe = take();
        assert_eq!(fresh.0.capacity(), 0, "an empty stash gives new storage");
    }

    #[test]
    fn large_or_empty_storage_is_freed_not_kept() {
        let mut big: Vec<u16> = Vec::with_capacity(9);
        big.push(1);
        give(big);
        give(Vec::<u16>::new());
        assert_eq!(take::<Vec<u16>>().capacity(), 0);
        let mut small: Vec<u16> = Vec::with_capacity(8);
        small.push(1);
        give(small);
        assert_eq!(take::<Vec<u16>>().capacity(), 8);
    }

    #[test]
    fn a_stash_holds_a_bounded_number() {
        for _ in 0..STASH * 2 {
            give(Vec::<u16>::with_capacity(4));
        }
        let kept = std::iter::from_fn(|| Some(take::<Vec<u16>>()))
            .take_while(|v| v.capacity() > 0)
            .count();
        assert_eq!(kept, STASH);
    }
}
