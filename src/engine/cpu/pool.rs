//! A small persistent thread pool: `run(f)` calls f(i, n) on n threads (the caller is thread 0) and
//! returns when all are done. A decode step runs ~60 such jobs, so waking threads must cost microseconds:
//! idle workers spin briefly on an epoch counter before they sleep on a condvar.
//! In wasm (one thread, no `std::thread`) every job runs inline on the caller.

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};

    type Job = *const (dyn Fn(usize, usize) + Sync);

    struct Shared {
        epoch: AtomicU64,
        remaining: AtomicUsize,
        quit: AtomicBool,
        job: Mutex<Option<JobPtr>>,
        sleep: Mutex<()>,
        wake: Condvar,
        threads: usize,
    }

    #[derive(Clone, Copy)]
    struct JobPtr(Job);
    // The pointer is only dereferenced while `run` (which owns the closure) waits for every worker.
    unsafe impl Send for JobPtr {}

    /// Spins before a worker sleeps (~tens of microseconds): longer than the gap between two jobs of a
    /// step, shorter than the gap between steps of an interactive generation.
    const SPINS: u32 = 20_000;

    pub struct Pool {
        shared: Arc<Shared>,
        handles: Vec<std::thread::JoinHandle<()>>,
    }

    impl Pool {
        /// A pool of `threads` threads in all (the caller counts as one).
        pub fn new(threads: usize) -> Pool {
            let threads = threads.max(1);
            let shared = Arc::new(Shared {
                epoch: AtomicU64::new(0),
                remaining: AtomicUsize::new(0),
                quit: AtomicBool::new(false),
                job: Mutex::new(None),
                sleep: Mutex::new(()),
                wake: Condvar::new(),
                threads,
            });
            let handles = (1..threads)
                .map(|i| {
                    let s = shared.clone();
                    std::thread::Builder::new().name(format!("gpt2-cpu-{i}")).spawn(move || worker(s, i)).expect("spawn a worker thread")
                })
                .collect();
            Pool { shared, handles }
        }

        pub fn threads(&self) -> usize {
            self.shared.threads
        }

        /// f(i, n) for i in 0..n on n threads; returns when every call has returned.
        pub fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
            let n = self.shared.threads;
            if n == 1 {
                return f(0, 1);
            }
            // Erase the lifetime: the workers use the pointer only until `remaining` reaches 0 below.
            let ptr: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), &'static (dyn Fn(usize, usize) + Sync)>(f) };
            *self.shared.job.lock().unwrap() = Some(JobPtr(ptr));
            self.shared.remaining.store(n - 1, Ordering::Release);
            {
                let _g = self.shared.sleep.lock().unwrap();
                self.shared.epoch.fetch_add(1, Ordering::AcqRel);
                self.shared.wake.notify_all();
            }
            f(0, n);
            let mut spins = 0u32;
            while self.shared.remaining.load(Ordering::Acquire) != 0 {
                spins += 1;
                if spins < SPINS {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
        }
    }

    fn worker(s: Arc<Shared>, i: usize) {
        let mut seen = 0u64;
        loop {
            let mut spins = 0u32;
            loop {
                if s.quit.load(Ordering::Acquire) {
                    return;
                }
                let e = s.epoch.load(Ordering::Acquire);
                if e != seen {
                    seen = e;
                    break;
                }
                if spins < SPINS {
                    spins += 1;
                    std::hint::spin_loop();
                    continue;
                }
                let g = s.sleep.lock().unwrap();
                if s.epoch.load(Ordering::Acquire) == seen && !s.quit.load(Ordering::Acquire) {
                    drop(s.wake.wait(g).unwrap());
                }
            }
            let job = s.job.lock().unwrap().expect("a job is set before the epoch moves");
            // SAFETY: `run` keeps the closure alive until `remaining` is 0.
            unsafe { (*job.0)(i, s.threads) };
            s.remaining.fetch_sub(1, Ordering::AcqRel);
        }
    }

    impl Drop for Pool {
        fn drop(&mut self) {
            {
                let _g = self.shared.sleep.lock().unwrap();
                self.shared.quit.store(true, Ordering::Release);
                self.shared.wake.notify_all();
            }
            for h in self.handles.drain(..) {
                let _ = h.join();
            }
        }
    }

    /// Threads to use by default: `GPT2_THREADS` if set, else every core.
    pub fn default_threads() -> usize {
        std::env::var("GPT2_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n >= 1)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    /// One thread: jobs run inline.
    pub struct Pool;
    impl Pool {
        pub fn new(_threads: usize) -> Pool {
            Pool
        }
        pub fn threads(&self) -> usize {
            1
        }
        pub fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
            f(0, 1)
        }
    }
    pub fn default_threads() -> usize {
        1
    }
}

pub use imp::{default_threads, Pool};

/// The share [lo, hi) of `n` items that thread `i` of `threads` takes, in multiples of `align`.
pub fn share(n: usize, i: usize, threads: usize, align: usize) -> (usize, usize) {
    let units = n.div_ceil(align);
    let lo = (units * i / threads * align).min(n);
    let hi = (units * (i + 1) / threads * align).min(n);
    (lo, hi)
}

/// A raw pointer that threads writing disjoint parts of one buffer may share.
#[derive(Clone, Copy)]
pub struct SyncPtr(pub *mut f32);
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// The pointer (a method, so closures capture the whole `SyncPtr`, not its field).
    pub fn get(self) -> *mut f32 {
        self.0
    }
}
