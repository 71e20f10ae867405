//! Read-bandwidth probe: the ceiling a memory-bound decode works against. Sums a 200 MB buffer with
//! AVX2 on 1 thread, then on 2 (each its half), 3 rounds each, and prints GB/s (best round).
//! `cargo run --release --example read_bandwidth`. Decode reads every weight once per token, so
//! tok/s <= GB/s / weight bytes per token (gpt2 q8: 131.7 MB, `gpt2 bench --json`).

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::arch::x86_64::*;
    use std::time::Instant;

    #[target_feature(enable = "avx2")]
    unsafe fn sum(b: &[u8]) -> u64 {
        let p = b.as_ptr();
        let n = b.len() / 128 * 128;
        let z = _mm256_setzero_si256();
        // Four independent accumulators so the adds are not the bottleneck.
        let mut a = [z; 4];
        let mut i = 0;
        while i < n {
            for (j, acc) in a.iter_mut().enumerate() {
                *acc = _mm256_add_epi64(*acc, _mm256_sad_epu8(_mm256_loadu_si256(p.add(i + 32 * j) as *const __m256i), z));
            }
            i += 128;
        }
        let s = _mm256_add_epi64(_mm256_add_epi64(a[0], a[1]), _mm256_add_epi64(a[2], a[3]));
        let mut o = [0u64; 4];
        _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, s);
        o.iter().sum()
    }

    if !std::is_x86_feature_detected!("avx2") {
        eprintln!("this CPU has no AVX2: the probe needs it");
        std::process::exit(1);
    }
    let n = 200usize << 20;
    let buf: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
    let (mut one, mut two) = (0f64, 0f64);
    for _ in 0..3 {
        let t = Instant::now();
        // SAFETY: AVX2 was detected above.
        let s1 = unsafe { sum(&buf) };
        one = one.max(n as f64 / t.elapsed().as_secs_f64() / 1e9);
        let t = Instant::now();
        let (a, b) = buf.split_at(n / 2);
        let s2 = std::thread::scope(|sc| {
            let h = sc.spawn(|| unsafe { sum(b) });
            let x = unsafe { sum(a) };
            x + h.join().expect("the second thread ran")
        });
        two = two.max(n as f64 / t.elapsed().as_secs_f64() / 1e9);
        assert_eq!(s1, s2, "both ways read the same bytes");
    }
    println!("read bandwidth, 200 MB, best of 3: 1 thread {one:.1} GB/s, 2 threads {two:.1} GB/s");
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("the read-bandwidth probe is written for x86-64 (AVX2)");
}
