//! Test projections wrapping real ones: one that fails on demand (after its writes, so
//! they must be rolled back), one that counts the batches it applied.
//!
//! The `Projection` trait is declared with `#[async_trait]`; this crate does not depend
//! on `async-trait`, so the impls below spell out what the macro expands to.

use projections::{LogPosition, Projection, ProjectionError, RecordedEvent};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use store::db::Tx;

type ApplyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ProjectionError>> + Send + 'a>>;

/// Delegates to `inner`, then, from the `fail_on`-th call on and until [`release`]d,
/// returns an error: the batch's writes happened inside the engine's transaction, which
/// must roll them back together with the checkpoint.
///
/// [`release`]: Failing::release
pub struct Failing {
    inner: Arc<dyn Projection>,
    fail_on: usize,
    calls: AtomicUsize,
    held: AtomicBool,
    injected: AtomicUsize,
    /// Last event of the last batch that succeeded.
    last_ok: Mutex<Option<LogPosition>>,
    /// First event of the last batch that failed.
    failed_at: Mutex<Option<LogPosition>>,
    max_batch: AtomicUsize,
}

impl Failing {
    pub fn new(inner: Arc<dyn Projection>, fail_on: usize) -> Self {
        Self {
            inner,
            fail_on,
            calls: AtomicUsize::new(0),
            held: AtomicBool::new(true),
            injected: AtomicUsize::new(0),
            last_ok: Mutex::new(None),
            failed_at: Mutex::new(None),
            max_batch: AtomicUsize::new(0),
        }
    }

    /// From now on every call succeeds.
    pub fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    pub fn last_ok(&self) -> Option<LogPosition> {
        *self.last_ok.lock().unwrap()
    }

    pub fn failed_at(&self) -> Option<LogPosition> {
        *self.failed_at.lock().unwrap()
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch.load(Ordering::SeqCst)
    }
}

impl Projection for Failing {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn tables(&self) -> &'static [&'static str] {
        self.inner.tables()
    }

    fn apply<'a, 'b, 'c, 'f>(
        &'a self,
        tx: &'b mut Tx,
        generation: i64,
        events: &'c [RecordedEvent],
    ) -> ApplyFuture<'f>
    where
        'a: 'f,
        'b: 'f,
        'c: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            self.max_batch.fetch_max(events.len(), Ordering::SeqCst);
            self.inner.apply(tx, generation, events).await?;
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= self.fail_on && self.held.load(Ordering::SeqCst) {
                self.injected.fetch_add(1, Ordering::SeqCst);
                *self.failed_at.lock().unwrap() = events.first().map(RecordedEvent::log_position);
                return Err(ProjectionError::Handler(format!(
                    "injected failure in {} (call {n})",
                    self.inner.name()
                )));
            }
            *self.last_ok.lock().unwrap() = events.last().map(RecordedEvent::log_position);
            Ok(())
        })
    }
}

/// Delegates to `inner` and counts the batches this instance applied.
pub struct Counting {
    inner: Arc<dyn Projection>,
    batches: Arc<AtomicUsize>,
}

impl Counting {
    pub fn new(inner: Arc<dyn Projection>) -> (Arc<Self>, Arc<AtomicUsize>) {
        let batches = Arc::new(AtomicUsize::new(0));
        (
            Arc::new(Self {
                inner,
                batches: batches.clone(),
            }),
            batches,
        )
    }
}

impl Projection for Counting {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn tables(&self) -> &'static [&'static str] {
        self.inner.tables()
    }

    fn apply<'a, 'b, 'c, 'f>(
        &'a self,
        tx: &'b mut Tx,
        generation: i64,
        events: &'c [RecordedEvent],
    ) -> ApplyFuture<'f>
    where
        'a: 'f,
        'b: 'f,
        'c: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            self.inner.apply(tx, generation, events).await?;
            self.batches.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}
