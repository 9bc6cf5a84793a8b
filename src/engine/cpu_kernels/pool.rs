//! The worker threads that edgesight's CPU kernels split one op's tasks over (`--threads`).
//!
//! Why not tract's rayon pool: one frame is a hundred or more ops of 10 us to a few ms each, and
//! a rayon worker that went to sleep between two ops takes tens of microseconds to wake on a
//! virtual machine. Measured here, 2 threads on rayon were slower than 1 (selfie 6.9 -> 16.7 ms).
//! Like onnxruntime's pool, these workers spin for a short while after each op, so the next op
//! finds them awake, and only then sleep. The calling thread works too: `threads` = helpers + 1.
//!
//! One op at a time: a second caller while the pool is busy (the live demo runs pose and
//! segmentation concurrently) runs its tasks on its own thread, which is already the right split.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long an idle helper spins before it sleeps: longer than the gaps between ops of one frame.
const SPIN: Duration = Duration::from_millis(3);

/// Parts a job's tasks are cut into, one per thread: at most this many threads own a part.
const MAX_PARTS: usize = 16;

/// One op's task list; lives on the caller's stack while the pool runs it.
///
/// Tasks are cut into one contiguous part per thread, and thread `w` starts on part `w`: an op
/// that splits its output the same way as the op before it then finds its share of that
/// output in its own core's cache. A thread whose part is done takes the rest of the others'.
/// Measured against one shared task counter, alternating runs in one process at 2 threads:
/// LitePose-XS, LitePose-S, BEVANet-S, MoveNet and selfie 7-11% faster (p50).
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    n: usize,
    parts: usize,
    /// Next task of each part (it starts at the part's first task).
    next: [AtomicUsize; MAX_PARTS],
    done: AtomicUsize,
    panicked: AtomicBool,
}

impl Job<'_> {
    fn new(f: &(dyn Fn(usize) + Sync), n: usize, threads: usize) -> Job<'_> {
        let parts = threads.clamp(1, MAX_PARTS);
        let next = std::array::from_fn(|p| AtomicUsize::new(if p < parts { p * n / parts } else { n }));
        Job { f, n, parts, next, done: AtomicUsize::new(0), panicked: AtomicBool::new(false) }
    }

    /// Takes tasks, thread `worker`'s own part first, until none is left.
    fn work(&self, worker: usize) {
        for k in 0..self.parts {
            let p = (worker + k) % self.parts;
            let end = (p + 1) * self.n / self.parts;
            loop {
                let i = self.next[p].fetch_add(1, Relaxed);
                if i >= end {
                    break;
                }
                if catch_unwind(AssertUnwindSafe(|| (self.f)(i))).is_err() {
                    self.panicked.store(true, Relaxed);
                }
                self.done.fetch_add(1, Release);
            }
        }
    }
}

#[derive(Default)]
struct Shared {
    /// The running job, null when idle.
    job: AtomicPtr<Job<'static>>,
    /// Bumped for every job, so idle helpers notice one.
    epoch: AtomicUsize,
    /// Helpers holding a pointer to the job: the caller waits for 0 before its job goes away.
    busy: AtomicUsize,
    /// Helpers asleep (parked), to be unparked for the next job.
    sleeping: AtomicUsize,
    /// A caller owns the pool.
    owned: AtomicBool,
    shutdown: AtomicBool,
}

pub struct SpinPool {
    shared: Arc<Shared>,
    helpers: Vec<Thread>,
    handles: Vec<JoinHandle<()>>,
}

impl SpinPool {
    /// A pool for `threads` threads in all: `threads - 1` helpers and the caller.
    pub fn new(threads: usize) -> std::io::Result<SpinPool> {
        let shared = Arc::new(Shared::default());
        let mut handles = Vec::new();
        for i in 1..threads.max(1) {
            let shared = shared.clone();
            handles.push(std::thread::Builder::new().name(format!("edgesight-cpu-{i}")).spawn(move || helper(&shared, i))?);
        }
        let helpers = handles.iter().map(|h| h.thread().clone()).collect();
        Ok(SpinPool { shared, helpers, handles })
    }

    pub fn threads(&self) -> usize {
        self.helpers.len() + 1
    }

    /// Runs `f(0..n)`, each index once, on the helpers and the calling thread; returns when all
    /// are done. A panic in a task is re-raised here after every task has finished.
    pub fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        if n <= 1 || self.helpers.is_empty() || self.shared.owned.swap(true, Acquire) {
            (0..n).for_each(f);
            return;
        }
        let s = &*self.shared;
        let job = Job::new(f, n, self.threads());
        // SAFETY (lifetime): the pointer is withdrawn, and every helper holding it has let go
        // (`busy` == 0), before `job` leaves this frame.
        s.job.store(&job as *const Job as *mut Job<'static>, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        if s.sleeping.load(SeqCst) > 0 {
            self.helpers.iter().for_each(Thread::unpark);
        }
        job.work(0);
        let mut spins = 0u32;
        while job.done.load(Acquire) < n {
            pause(&mut spins);
        }
        s.job.store(std::ptr::null_mut(), SeqCst);
        while s.busy.load(SeqCst) > 0 {
            pause(&mut spins);
        }
        s.owned.store(false, Release);
        if job.panicked.load(Relaxed) {
            panic!("a CPU kernel task panicked");
        }
    }
}

/// One step of a spin-wait. Every 64th step yields the core: when other processes leave fewer
/// cores than threads, a spinning thread would otherwise hold the core that the thread it waits
/// for needs (measured: LitePose-XS at 2 threads sometimes took 46 ms instead of 20).
fn pause(spins: &mut u32) {
    *spins = spins.wrapping_add(1);
    if *spins % 64 == 0 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

fn helper(s: &Shared, worker: usize) {
    let mut seen = 0;
    loop {
        let mut since: Option<Instant> = None;
        let mut spins = 0u32;
        loop {
            if s.shutdown.load(Relaxed) {
                return;
            }
            let e = s.epoch.load(Acquire);
            if e != seen {
                seen = e;
                break;
            }
            pause(&mut spins);
            if spins % 1024 == 0 && since.get_or_insert_with(Instant::now).elapsed() > SPIN {
                // Announce the sleep, then look once more: a caller that bumped the epoch
                // before seeing `sleeping` > 0 is caught by this check, one after it unparks us.
                s.sleeping.fetch_add(1, SeqCst);
                if s.epoch.load(SeqCst) == seen && !s.shutdown.load(SeqCst) {
                    std::thread::park_timeout(Duration::from_millis(200));
                }
                s.sleeping.fetch_sub(1, SeqCst);
                since = None;
            }
        }
        s.busy.fetch_add(1, SeqCst);
        let job = s.job.load(SeqCst);
        if !job.is_null() {
            // SAFETY: non-null while its caller waits for `busy` to drop to 0 (see `run`).
            unsafe { (*job).work(worker) };
        }
        s.busy.fetch_sub(1, SeqCst);
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, SeqCst);
        self.helpers.iter().for_each(Thread::unpark);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

static POOL: Mutex<Option<Arc<SpinPool>>> = Mutex::new(None);

/// Sets the process-wide pool to `threads` threads (1: no helpers).
pub fn set_threads(threads: usize) -> std::io::Result<()> {
    let pool = if threads > 1 { Some(Arc::new(SpinPool::new(threads)?)) } else { None };
    *POOL.lock().unwrap_or_else(|e| e.into_inner()) = pool;
    Ok(())
}

/// Threads of the process-wide pool (1: no helpers).
pub fn threads() -> usize {
    POOL.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(1, |p| p.threads())
}

/// Runs `f(0..n)` on the process-wide pool (serially when it has one thread).
pub fn parallel(n: usize, f: &(dyn Fn(usize) + Sync)) {
    let pool = POOL.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match pool {
        Some(pool) if n > 1 => pool.run(n, f),
        _ => (0..n).for_each(f),
    }
}

/// Runs `f(start, part)` over `out` cut into parts of whole `unit`s, `start` being the part's
/// offset in `out`: up to 16 parts over the worker pool when `out` is large, else one.
pub fn split_out<U: Send>(out: &mut [U], unit: usize, f: &(dyn Fn(usize, &mut [U]) + Sync)) {
    let (len, units) = (out.len(), out.len().div_ceil(unit.max(1)));
    let tasks = if len >= 1 << 15 { units.min(16) } else { 1 };
    let dst = super::spec::SendPtr(out.as_mut_ptr() as *mut f32);
    parallel(tasks, &|t: usize| {
        let (c0, c1) = ((t * units / tasks * unit).min(len), ((t + 1) * units / tasks * unit).min(len));
        // SAFETY: the parts are disjoint ranges of `out`.
        let part = unsafe { std::slice::from_raw_parts_mut((dst.get() as *mut U).add(c0), c1 - c0) };
        f(c0, part);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_across_many_jobs() {
        let pool = SpinPool::new(3).unwrap();
        for n in [0, 1, 2, 7, 100] {
            for _ in 0..200 {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                pool.run(n, &|i| {
                    hits[i].fetch_add(1, Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Relaxed) == 1), "n = {n}");
            }
        }
    }

    #[test]
    fn helpers_wake_after_sleeping() {
        let pool = SpinPool::new(2).unwrap();
        std::thread::sleep(SPIN * 3);
        let on_helper = AtomicBool::new(false);
        let caller = std::thread::current().id();
        // Tasks long enough that the woken helper takes some of them.
        for _ in 0..50 {
            pool.run(64, &|_| {
                if std::thread::current().id() != caller {
                    on_helper.store(true, Relaxed);
                }
                std::thread::sleep(Duration::from_micros(200));
            });
            if on_helper.load(Relaxed) {
                break;
            }
            std::thread::sleep(SPIN * 3);
        }
        assert!(on_helper.load(Relaxed), "the helper never took a task");
    }

    #[test]
    fn concurrent_callers_and_panics() {
        let pool = Arc::new(SpinPool::new(2).unwrap());
        let total = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let (pool, total) = (pool.clone(), total.clone());
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        pool.run(9, &|_| {
                            total.fetch_add(1, Relaxed);
                        });
                    }
                })
            })
            .collect();
        callers.into_iter().for_each(|c| c.join().unwrap());
        assert_eq!(total.load(Relaxed), 3 * 300 * 9);
        let r = catch_unwind(AssertUnwindSafe(|| pool.run(8, &|i| assert!(i != 5))));
        assert!(r.is_err(), "a task's panic reaches the caller");
        // The pool still works after a panic.
        let count = AtomicUsize::new(0);
        pool.run(8, &|_| {
            count.fetch_add(1, Relaxed);
        });
        assert_eq!(count.load(Relaxed), 8);
    }
}
