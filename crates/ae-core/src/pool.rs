//! The CPU thread pool ae's kernels run on (candle's), for other CPU work
//! in a training step: one set of threads then serves the whole step,
//! instead of two pools' idle threads spinning on each other's cores.

/// `f` applied to each item, the items spread over the pool's threads (one
/// runs on the calling thread); the results in the items' order. A call
/// from inside the pool runs its items on the calling thread.
pub fn map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    crate::cpu::par_map(items, f)
}

/// The pool's threads: its workers and the calling thread.
pub fn threads() -> usize {
    crate::cpu::threads()
}
