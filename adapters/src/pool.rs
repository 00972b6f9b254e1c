//! A small connection pool for network sources: a bounded number of connections per dataset, idle
//! ones kept in a stack, a new one made on demand, waiting bounded by the fetch's deadline.
//!
//! Written here rather than taken from a crate because it is this small, and because the adapters
//! need exact control over when a connection goes back: only when it is known to be in sync with
//! the server. A connection dropped while marked busy (its fetch was abandoned mid-query) is closed,
//! never handed to the next request.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a connection could not be had.
#[derive(Debug)]
pub(crate) enum PoolError<E> {
    /// The deadline passed while waiting for a free slot or while connecting.
    Timeout,
    /// Making a new connection failed.
    Connect(E),
}

pub(crate) struct Pool<C> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    idle: Mutex<Vec<C>>,
    permits: Arc<Semaphore>,
}

impl<C> Pool<C> {
    pub fn new(size: usize) -> Pool<C> {
        Pool {
            inner: Arc::new(Inner {
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(size)),
            }),
        }
    }

    /// An idle connection that `usable` accepts, or a new one from `connect`, before `deadline`.
    pub async fn get<E, F, Fut>(
        &self,
        deadline: Instant,
        usable: impl Fn(&C) -> bool,
        connect: F,
    ) -> Result<Pooled<C>, PoolError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, E>>,
    {
        let permit = tokio::time::timeout_at(
            deadline.into(),
            Arc::clone(&self.inner.permits).acquire_owned(),
        )
        .await
        .map_err(|_| PoolError::Timeout)?
        .expect("the pool's semaphore is never closed");
        let pooled = |conn, fresh| Pooled {
            inner: Arc::clone(&self.inner),
            conn: Some(conn),
            busy: false,
            fresh,
            _permit: permit,
        };
        loop {
            let idle = self
                .inner
                .idle
                .lock()
                .map(|mut idle| idle.pop())
                .unwrap_or(None);
            match idle {
                Some(c) if usable(&c) => return Ok(pooled(c, false)),
                Some(_) => continue, // dead: drop it and look again
                None => break,
            }
        }
        let conn = tokio::time::timeout_at(deadline.into(), connect())
            .await
            .map_err(|_| PoolError::Timeout)?
            .map_err(PoolError::Connect)?;
        Ok(pooled(conn, true))
    }
}

/// A connection taken from the pool: it goes back when dropped, unless discarded or busy.
pub(crate) struct Pooled<C> {
    inner: Arc<Inner<C>>,
    conn: Option<C>,
    busy: bool,
    fresh: bool,
    _permit: OwnedSemaphorePermit,
}

impl<C> Pooled<C> {
    /// Close this connection instead of returning it (its state with the server is unknown).
    pub fn discard(mut self) {
        self.conn = None;
    }

    /// True if the connection was made for this use rather than taken idle from the pool. A
    /// pooled connection may have been closed by the server while idle; the adapters retry a
    /// read-only fetch once, on a fresh connection, when a reused one turns out to be dead.
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Mark the connection as running a query (`true`) or back in sync (`false`). Dropped while
    /// busy, it is closed rather than returned.
    pub fn set_busy(&mut self, busy: bool) {
        self.busy = busy;
    }
}

impl<C> Deref for Pooled<C> {
    type Target = C;
    fn deref(&self) -> &C {
        self.conn
            .as_ref()
            .expect("present until dropped or discarded")
    }
}

impl<C> DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut C {
        self.conn
            .as_mut()
            .expect("present until dropped or discarded")
    }
}

impl<C> Drop for Pooled<C> {
    fn drop(&mut self) {
        if self.busy {
            return; // abandoned mid-query: the connection closes with this value
        }
        if let Some(c) = self.conn.take() {
            if let Ok(mut idle) = self.inner.idle.lock() {
                idle.push(c);
            }
        }
    }
}
