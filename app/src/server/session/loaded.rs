//! The record the session layer loaded for a request, kept for that request's first
//! compare-and-swap, so a cart write reads its session once, not twice.
//!
//! A compare-and-swap needs the stored bytes it compares against. The layer has just read
//! them (tower-sessions loads the record when the login timeouts look at it), together with
//! the catalog version, in one statement; the change takes them from here instead of reading
//! again. They may be stale by the time the change writes — another request of the session,
//! on this server or another, wrote in between — and then the swap does not match, writes
//! nothing and the change is retried on a fresh read, as for any conflict: the comparison in
//! the database, not this copy, is what keeps updates from being lost. Any write of the
//! record by the request itself forgets the copy, and a copy is used at most once.
//!
//! The copy lives in a task-local slot that the session layer opens around each request; code
//! running outside one (a spawned task, the sweeper) finds no copy and reads the database.

use std::cell::RefCell;
use std::future::Future;
use tower_sessions::session::Id;

/// A stored record's bytes as the layer read them, with the catalog version read in the same
/// statement (SQL stores; Redis has none).
pub(crate) struct Loaded {
    pub id: Id,
    pub bytes: Vec<u8>,
    pub catalog_version: Option<i64>,
}

tokio::task_local! {
    static LOADED: RefCell<Option<Loaded>>;
}

/// Runs `request` with an empty slot of its own.
pub(crate) fn scope<F: Future>(request: F) -> impl Future<Output = F::Output> {
    LOADED.scope(RefCell::new(None), request)
}

/// Keeps what the layer just read (nothing outside a request's slot).
pub(crate) fn remember(loaded: Loaded) {
    let _ = LOADED.try_with(|slot| *slot.borrow_mut() = Some(loaded));
}

/// The record the layer read for `id`, once; `None` when there is none, or it was written
/// since, or already used.
pub(crate) fn take(id: &Id) -> Option<Loaded> {
    LOADED
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten()
        .filter(|loaded| loaded.id == *id)
}

/// The request wrote the record: the copy is stale.
pub(crate) fn forget() {
    let _ = LOADED.try_with(|slot| slot.borrow_mut().take());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(id: i128) -> Loaded {
        Loaded {
            id: Id(id),
            bytes: vec![1, 2, 3],
            catalog_version: Some(7),
        }
    }

    #[tokio::test]
    async fn a_copy_is_for_its_own_session_once_and_never_after_a_write() {
        scope(async {
            remember(loaded(1));
            assert!(take(&Id(2)).is_none(), "another session's ID");
            // Taking it for another ID used it up as well: a request has one session.
            assert!(take(&Id(1)).is_none());
            remember(loaded(1));
            let copy = take(&Id(1)).expect("the copy");
            assert_eq!((copy.bytes, copy.catalog_version), (vec![1, 2, 3], Some(7)));
            assert!(take(&Id(1)).is_none(), "used once");
            remember(loaded(1));
            forget();
            assert!(take(&Id(1)).is_none(), "forgotten after a write");
        })
        .await;
    }

    #[tokio::test]
    async fn requests_do_not_see_each_others_copies() {
        scope(async { remember(loaded(1)) }).await;
        scope(async { assert!(take(&Id(1)).is_none()) }).await;
        // Outside any request: nothing kept, nothing found, no panic.
        remember(loaded(1));
        assert!(take(&Id(1)).is_none());
    }
}
