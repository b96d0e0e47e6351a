//! A cap on connections served at once, for the local endpoints any user can reach (the
//! metrics server, the control socket): each connection holds a [`Slot`] while served.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The connections being served, at most `max`.
#[derive(Clone)]
pub struct Slots {
    open: Arc<AtomicUsize>,
    max: usize,
}

/// One served connection's place, given back when dropped.
pub struct Slot(Arc<AtomicUsize>);

impl Slots {
    pub fn new(max: usize) -> Slots {
        Slots { open: Arc::new(AtomicUsize::new(0)), max }
    }

    /// A place, if fewer than `max` are taken.
    pub fn take(&self) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1))
            .ok()
            .map(|_| Slot(self.open.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_are_taken_and_dropping_gives_back() {
        let slots = Slots::new(2);
        let (a, b) = (slots.take().unwrap(), slots.take().unwrap());
        assert!(slots.take().is_none());
        drop(a);
        let c = slots.take().expect("one given back");
        assert!(slots.take().is_none());
        drop((b, c));
        assert!(slots.take().is_some());
    }
}
