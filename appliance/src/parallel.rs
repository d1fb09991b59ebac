//! A small ordered parallel map for batch work on files (decoding and warping are CPU work
//! outside OpenVINO, so two workers on two cores nearly double enrolment throughput).

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` applied to every item on `workers` threads; results in input order. `done` is called
/// after each item (for progress bars).
pub fn map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    done: &(dyn Fn() + Sync),
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results =
        parking_lot::Mutex::new((0..items.len()).map(|_| None).collect::<Vec<Option<R>>>());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = f(item);
                results.lock()[i] = Some(result);
                done();
            });
        }
    });
    results
        .into_inner()
        .into_iter()
        .map(|r| r.expect("every item was processed"))
        .collect()
}

/// Worker threads for batch work: one per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_and_calls_done_per_item() {
        let items: Vec<u32> = (0..100).collect();
        let count = std::sync::atomic::AtomicUsize::new(0);
        let out = super::map(
            &items,
            3,
            &|| {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
            |x| x * 2,
        );
        assert_eq!(out, (0..100).map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(count.into_inner(), 100);
    }
}
