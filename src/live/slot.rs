//! Hand-over points between the live threads, none of which ever blocks a producer.
//!
//! - [`Slot`]: latest wins, one consumer. `put` replaces a value nobody took yet, so a slow
//!   consumer (inference) always gets the newest frame and never a stale one, while a fast
//!   consumer still sees every value.
//! - [`Watch`]: the newest value for any number of readers, with a sequence number so a reader
//!   can tell whether it changed (the UI reads frames and results this way).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

struct SlotState<T> {
    value: Option<T>,
    closed: bool,
    /// Values put, and values replaced before anyone took them.
    put: u64,
    replaced: u64,
}

pub struct Slot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot { state: Mutex::new(SlotState { value: None, closed: false, put: 0, replaced: 0 }), ready: Condvar::new() }
    }
}

impl<T> Slot<T> {
    pub fn new() -> Slot<T> {
        Slot::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState<T>> {
        // A panicking holder cannot leave the state half-written (every update is one assignment).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `value`, dropping an unconsumed one. Returns true when one was dropped. Never blocks
    /// beyond the short lock.
    pub fn put(&self, value: T) -> bool {
        let mut s = self.lock();
        s.put += 1;
        let replaced = s.value.replace(value).is_some();
        if replaced {
            s.replaced += 1;
        }
        drop(s);
        self.ready.notify_one();
        replaced
    }

    /// Takes the value if there is one.
    pub fn try_take(&self) -> Option<T> {
        self.lock().value.take()
    }

    /// Waits up to `timeout` for a value. None on timeout or when the slot is closed and empty.
    pub fn take_timeout(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(v) = s.value.take() {
                return Some(v);
            }
            let now = Instant::now();
            if s.closed || now >= deadline {
                return None;
            }
            s = self.ready.wait_timeout(s, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Wakes waiting consumers for good; later `take_timeout` calls return at once when empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Closed by the producer: once empty, nothing more comes.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// (values put, values dropped unconsumed).
    pub fn counts(&self) -> (u64, u64) {
        let s = self.lock();
        (s.put, s.replaced)
    }
}

/// The newest value, shared. Readers get an `Arc` and the value's sequence number (0: none yet).
pub struct Watch<T> {
    inner: Mutex<(u64, Option<Arc<T>>)>,
}

impl<T> Default for Watch<T> {
    fn default() -> Self {
        Watch { inner: Mutex::new((0, None)) }
    }
}

impl<T> Watch<T> {
    pub fn new() -> Watch<T> {
        Watch::default()
    }

    pub fn publish(&self, value: Arc<T>) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        g.1 = Some(value);
        g.0
    }

    /// Removes the value (e.g. a model was switched off); readers see a new sequence number.
    pub fn clear(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 += 1;
        g.1 = None;
    }

    pub fn latest(&self) -> (u64, Option<Arc<T>>) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (g.0, g.1.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn slow_consumer_never_sees_a_stale_value() {
        let slot = Arc::new(Slot::new());
        // The producer publishes how far it got; a value taken must be at least that new.
        let produced = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let consumer = {
            let (slot, produced) = (slot.clone(), produced.clone());
            thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    // Everything counted here was put before the take: the take must be at least as new.
                    let put_before_take = produced.load(std::sync::atomic::Ordering::SeqCst);
                    let Some(v) = slot.take_timeout(Duration::from_secs(5)) else { break };
                    assert!(v >= put_before_take, "took {v} although {put_before_take} was already put");
                    seen.push(v);
                    thread::sleep(Duration::from_millis(20)); // slow "inference"
                }
                seen
            })
        };
        for i in 1..=100u64 {
            slot.put(i);
            produced.store(i, std::sync::atomic::Ordering::SeqCst);
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(50));
        slot.close();
        let seen = consumer.join().unwrap();
        assert!(seen.len() < 100, "a slow consumer skips frames, got {}", seen.len());
        // Strictly increasing: never an older value after a newer one.
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        // The last value put is the last value taken: nothing stale was left behind.
        assert_eq!(*seen.last().unwrap(), 100);
        let (put, dropped) = slot.counts();
        assert_eq!(put, 100);
        assert_eq!(dropped as usize, 100 - seen.len());
    }

    #[test]
    fn take_returns_the_newest_of_several_puts() {
        let slot = Slot::new();
        assert!(!slot.put(1));
        assert!(slot.put(2));
        assert!(slot.put(3));
        assert_eq!(slot.try_take(), Some(3));
        assert_eq!(slot.try_take(), None);
        assert_eq!(slot.take_timeout(Duration::from_millis(10)), None);
    }

    #[test]
    fn fast_consumer_sees_every_value() {
        let slot = Arc::new(Slot::new());
        let consumer = {
            let slot = slot.clone();
            thread::spawn(move || {
                let mut seen = Vec::new();
                while let Some(v) = slot.take_timeout(Duration::from_secs(5)) {
                    seen.push(v);
                }
                seen
            })
        };
        for i in 0..200u64 {
            // Put only once the previous value was taken: the consumer keeps up.
            let t = Instant::now();
            while slot.lock().value.is_some() {
                assert!(t.elapsed() < Duration::from_secs(5));
                thread::yield_now();
            }
            slot.put(i);
        }
        let t = Instant::now();
        while slot.lock().value.is_some() && t.elapsed() < Duration::from_secs(5) {
            thread::yield_now();
        }
        slot.close();
        let seen = consumer.join().unwrap();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        assert_eq!(slot.counts(), (200, 0));
    }

    #[test]
    fn closed_slot_wakes_a_waiting_consumer() {
        let slot = Arc::new(Slot::<u8>::new());
        let s2 = slot.clone();
        let t = thread::spawn(move || s2.take_timeout(Duration::from_secs(30)));
        thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        slot.close();
        assert_eq!(t.join().unwrap(), None);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn watch_numbers_each_value() {
        let w = Watch::new();
        assert_eq!(w.latest().0, 0);
        w.publish(Arc::new(5));
        w.publish(Arc::new(6));
        let (seq, v) = w.latest();
        assert_eq!((seq, *v.unwrap()), (2, 6));
        w.clear();
        assert!(matches!(w.latest(), (3, None)));
    }
}
