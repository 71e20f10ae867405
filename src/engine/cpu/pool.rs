//! A small persistent thread pool. `for_each(chunks, f)` calls f(c) for every chunk c, the chunks
//! claimed one by one from a shared counter by the caller and the workers. A decode step runs ~60 such
//! jobs, so waking threads must cost microseconds: idle workers spin briefly on an epoch counter
//! before they sleep on a condvar. Claiming chunks (rather than a fixed share per thread) matters on a
//! busy machine: when a worker is descheduled, the caller does its chunks instead of waiting for it.
//! The caller waits only for workers that actually joined the job (`active`), never for a sleeping one.
//! In wasm (one thread, no `std::thread`) every job runs inline on the caller.

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};

    type Job = *const (dyn Fn(usize, usize) + Sync);

    struct Shared {
        epoch: AtomicU64,
        /// The epoch whose job is over: workers that wake later must not touch it.
        closed: AtomicU64,
        /// Workers inside the current job.
        active: AtomicUsize,
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
    const SPINS: u32 = 2_000;

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
                closed: AtomicU64::new(0),
                active: AtomicUsize::new(0),
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

        /// f(c) for every c in 0..chunks, on as many threads as are free; returns when all are done.
        pub fn for_each(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
            if self.shared.threads == 1 || chunks <= 1 {
                return (0..chunks).for_each(f);
            }
            let next = AtomicUsize::new(0);
            let job = |_: usize, _: usize| loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= chunks {
                    break;
                }
                f(c);
            };
            self.run(&job);
        }

        /// `f(i, n)` on the caller (i = 0) and on every worker that wakes before the caller is done
        /// with it; returns when every call that started has returned. Callers share work through `f`.
        fn run(&self, f: &(dyn Fn(usize, usize) + Sync)) {
            let n = self.shared.threads;
            // Erase the lifetime: workers use the pointer only while they are counted in `active`,
            // and this function does not return before `active` is 0 after closing the epoch.
            let ptr: Job = unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync), &'static (dyn Fn(usize, usize) + Sync)>(f) };
            *self.shared.job.lock().unwrap() = Some(JobPtr(ptr));
            let e = {
                let _g = self.shared.sleep.lock().unwrap();
                let e = self.shared.epoch.fetch_add(1, Ordering::SeqCst) + 1;
                self.shared.wake.notify_all();
                e
            };
            f(0, n);
            self.shared.closed.store(e, Ordering::SeqCst);
            let mut spins = 0u32;
            while self.shared.active.load(Ordering::SeqCst) != 0 {
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
            // Join the job unless the caller already finished it (then it may be gone).
            s.active.fetch_add(1, Ordering::SeqCst);
            if s.closed.load(Ordering::SeqCst) != seen {
                let job = s.job.lock().unwrap().expect("a job is set before the epoch moves");
                // SAFETY: `run` keeps the closure alive until `active` is 0 after closing epoch `seen`.
                unsafe { (*job.0)(i, s.threads) };
            }
            s.active.fetch_sub(1, Ordering::SeqCst);
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
        pub fn for_each(&self, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
            (0..chunks).for_each(f)
        }
    }
    pub fn default_threads() -> usize {
        1
    }
}

pub use imp::{default_threads, Pool};

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
