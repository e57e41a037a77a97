//! The query memory pool of a coordinator or worker: DataFusion's fair spilling pool, whose
//! "cannot allocate" errors also name the config key that set the limit, so an operator
//! knows what to raise.
//!
//! ```text
//!  operator asks for memory ─▶ FairSpillPool (spillable operators share the pool fairly)
//!       refused ─▶ operators that can spill (sort, aggregate, join) spill to the spill dir
//!                ─▶ the rest fail: "… (the memory limit: worker.memory_limit_mb = 512)"
//! ```

use std::sync::Arc;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};

/// A pool of `mb` MiB set by config key `key`.
#[derive(Debug)]
pub struct LimitedPool {
    inner: TrackConsumersPool<FairSpillPool>,
    key: &'static str,
    mb: u64,
}

impl LimitedPool {
    /// The pool for `key = mb`; `None` when `mb` is 0 (no limit).
    pub fn for_limit(key: &'static str, mb: u64) -> Option<Arc<dyn MemoryPool>> {
        if mb == 0 {
            return None;
        }
        let bytes = usize::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
        let top = std::num::NonZeroUsize::new(3).expect("3 is not zero");
        Some(Arc::new(Self {
            inner: TrackConsumersPool::new(FairSpillPool::new(bytes), top),
            key,
            mb,
        }))
    }
}

impl MemoryPool for LimitedPool {
    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.inner.try_grow(reservation, additional).map_err(|e| {
            DataFusionError::ResourcesExhausted(format!(
                "{} (the memory limit: {} = {})",
                e.strip_backtrace()
                    .trim_start_matches("Resources exhausted: "),
                self.key,
                self.mb
            ))
        })
    }

    fn reserved(&self) -> usize {
        self.inner.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_limit() {
        assert!(LimitedPool::for_limit("worker.memory_limit_mb", 0).is_none());
        let pool = LimitedPool::for_limit("worker.memory_limit_mb", 1).unwrap();
        let reservation = MemoryConsumer::new("test").register(&pool);
        reservation.try_grow(512 * 1024).unwrap();
        let err = reservation
            .try_grow(4 * 1024 * 1024)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("(the memory limit: worker.memory_limit_mb = 1)"),
            "{err}"
        );
        assert_eq!(
            pool.reserved(),
            512 * 1024,
            "a refused request reserves nothing"
        );
    }
}
