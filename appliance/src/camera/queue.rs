//! The bounded hand-off from a camera's ingest thread to its analysis: when analysis falls
//! behind, the oldest frame is dropped (and counted), so alerts stay current and ingest never
//! blocks.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

pub struct DropOldestQueue<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    capacity: usize,
    dropped: AtomicU64,
    /// Rung on every push, for consumers that serve many queues.
    doorbell: Option<std::sync::Arc<Doorbell>>,
}

/// Wakes consumers of several queues when any of them gets an item.
#[derive(Default)]
pub struct Doorbell {
    rings: Mutex<u64>,
    rung: Condvar,
}

impl Doorbell {
    pub fn ring(&self) {
        *self.rings.lock() += 1;
        self.rung.notify_all();
    }

    /// The count of rings so far, to wait past.
    pub fn rings(&self) -> u64 {
        *self.rings.lock()
    }

    /// Waits until rung after `seen` (as returned by `rings`), or `timeout`.
    pub fn wait_past(&self, seen: u64, timeout: Duration) {
        let mut rings = self.rings.lock();
        if *rings == seen {
            let _ = self.rung.wait_for(&mut rings, timeout);
        }
    }
}

struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

pub enum Pop<T> {
    Item(T),
    TimedOut,
    /// Closed and drained.
    Closed,
}

impl<T> DropOldestQueue<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity),
                closed: false,
            }),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            doorbell: None,
        }
    }

    /// A queue that also rings `doorbell` on every push.
    pub fn with_doorbell(capacity: usize, doorbell: std::sync::Arc<Doorbell>) -> Self {
        Self {
            doorbell: Some(doorbell),
            ..Self::new(capacity)
        }
    }

    /// The oldest item, if there is one, without waiting.
    pub fn try_pop(&self) -> Option<T> {
        self.state.lock().items.pop_front()
    }

    /// Adds an item, dropping the oldest when full. Returns false (and drops `item`) once closed.
    pub fn push(&self, item: T) -> bool {
        let mut state = self.state.lock();
        if state.closed {
            return false;
        }
        if state.items.len() >= self.capacity {
            state.items.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        state.items.push_back(item);
        drop(state);
        self.ready.notify_one();
        if let Some(doorbell) = &self.doorbell {
            doorbell.ring();
        }
        true
    }

    /// The oldest item, waiting up to `timeout` for one. Items queued before `close` are still
    /// handed out: closing drains.
    pub fn pop(&self, timeout: Duration) -> Pop<T> {
        let mut state = self.state.lock();
        loop {
            if let Some(item) = state.items.pop_front() {
                return Pop::Item(item);
            }
            if state.closed {
                return Pop::Closed;
            }
            if self.ready.wait_for(&mut state, timeout).timed_out() {
                return match state.items.pop_front() {
                    Some(item) => Pop::Item(item),
                    None if state.closed => Pop::Closed,
                    None => Pop::TimedOut,
                };
            }
        }
    }

    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_oldest_and_counts() {
        let q = DropOldestQueue::new(2);
        for i in 0..5 {
            assert!(q.push(i));
        }
        assert_eq!(q.dropped(), 3);
        assert!(matches!(q.pop(Duration::ZERO), Pop::Item(3)));
        assert!(matches!(q.pop(Duration::ZERO), Pop::Item(4)));
        assert!(matches!(q.pop(Duration::from_millis(1)), Pop::TimedOut));
    }

    #[test]
    fn close_drains_then_ends() {
        let q = DropOldestQueue::new(4);
        q.push(1);
        q.close();
        assert!(!q.push(2));
        assert!(matches!(q.pop(Duration::ZERO), Pop::Item(1)));
        assert!(matches!(q.pop(Duration::from_secs(10)), Pop::Closed));
    }
}
