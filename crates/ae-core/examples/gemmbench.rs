// args: m n k [layout flags: a_t b_t c_t]
fn main() {
    if std::env::args().nth(1).as_deref() == Some("gemv") {
        gemv_bench();
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (m, n, k) = (args[0], args[1], args[2]);
    let (at, bt, ct) = (
        args.get(3).copied().unwrap_or(0) == 1,
        args.get(4).copied().unwrap_or(0) == 1,
        args.get(5).copied().unwrap_or(0) == 1,
    );
    let a = vec![1.0f32; m * k];
    let b = vec![1.0f32; k * n];
    let mut c = vec![0.0f32; m * n];
    // row-major unless transposed (stored as the transpose, row-major)
    let (a_rs, a_cs) = if at { (1, m as isize) } else { (k as isize, 1) };
    let (b_rs, b_cs) = if bt { (1, k as isize) } else { (n as isize, 1) };
    let (c_rs, c_cs) = if ct { (1, m as isize) } else { (n as isize, 1) };
    let reps = (2e9 / (m * n * k) as f64) as usize + 1;
    let run = |c: &mut [f32]| unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            false,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    };
    for _ in 0..reps / 10 + 1 {
        run(&mut c);
    }
    let t = std::time::Instant::now();
    for _ in 0..reps {
        run(&mut c);
    }
    let s = t.elapsed().as_secs_f64() / reps as f64;
    println!(
        "{m}x{n}x{k} a_t={at} b_t={bt} c_t={ct}: {:.1} us, {:.1} GFLOP/s",
        s * 1e6,
        2.0 * (m * n * k) as f64 / s / 1e9
    );
}

#[inline(always)]
fn dot16(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}
#[inline(always)]
fn gemv(w: &[f32], x: &[f32], y: &mut [f32], inp: usize) {
    for (o, row) in y.iter_mut().zip(w.chunks_exact(inp)) {
        *o = dot16(row, x);
    }
}
#[target_feature(enable = "avx2,fma")]
unsafe fn gemv_avx2(w: &[f32], x: &[f32], y: &mut [f32], inp: usize) {
    gemv(w, x, y, inp)
}
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gemv_avx512(w: &[f32], x: &[f32], y: &mut [f32], inp: usize) {
    gemv(w, x, y, inp)
}
#[allow(dead_code)]
pub fn gemv_bench() {
    for (out, inp) in [(3136usize, 32usize), (32, 3136)] {
        let w = vec![1.0f32; out * inp];
        let x = vec![1.0f32; inp];
        let mut y = vec![0.0f32; out];
        for (name, f) in [("base", 0), ("avx2", 1), ("avx512", 2)] {
            let t = std::time::Instant::now();
            for _ in 0..2000 {
                match f {
                    0 => gemv(&w, &x, &mut y, inp),
                    1 => unsafe { gemv_avx2(&w, &x, &mut y, inp) },
                    _ => unsafe { gemv_avx512(&w, &x, &mut y, inp) },
                }
                std::hint::black_box(&y);
            }
            println!(
                "gemv {out}x{inp} {name}: {:.1} us",
                t.elapsed().as_secs_f64() * 1e6 / 2000.0
            );
        }
    }
}
