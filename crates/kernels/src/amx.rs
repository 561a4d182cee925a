//! bf16 matrix products on Intel AMX tiles (Sapphire Rapids and later), for the trainer's
//! products with the frozen base.
//!
//! Why by hand: training multiplies every activation with every base weight twice per step
//! (forward `x W^T`, backward `dy W`), and on the CPU that is most of a step. gemm's f32
//! microkernels reach ~115 GFLOP/s per core here; one AMX `tdpbf16ps` multiplies a 16x32 bf16
//! tile by a 32x16 one into f32 in 16 cycles, ~1.8 TFLOP/s per core measured on this project's
//! Xeon VMs. No crate drives AMX, and Rust has no stable AMX intrinsics, so the few tile
//! instructions are inline assembly. Operands are rounded to bf16 (8-bit mantissa, f32's range)
//! and products summed in f32, as mixed-precision training does (Micikevicius et al., 2018).
//!
//! Layout: `A` is row-major bf16 with rows padded to [`BLOCK`] and columns to [`TILE_K`];
//! `B` is cut into 16-column by 32-row tiles, each stored as AMX wants it (rows of `B` in
//! pairs, the pair interleaved per column). Each 32x32 block of the output lives in four tile
//! registers for the whole `k` loop, reading two `A` and two `B` tiles per step.

#![allow(unsafe_code)]

use std::sync::OnceLock;

use crate::BlockFormat;

/// bf16 values per tile row (64 bytes), so the `k` step of one tile product.
pub const TILE_K: usize = 32;
/// Output columns per `B` tile.
const TILE_N: usize = 16;
/// Rows per tile.
const TILE_ROWS: usize = 16;
/// Output rows and columns per register block (2x2 tiles).
pub const BLOCK: usize = 32;
/// bf16 values per tile.
const TILE_ELEMS: usize = TILE_ROWS * TILE_K;

/// Whether this CPU and OS run AMX bf16 tiles and `AIRLOCK_NO_AMX` is unset; asked once per
/// process (the first call also asks Linux for permission to use the tile state). With
/// `AIRLOCK_NO_AMX=1` the trainer keeps its products in f32, as on CPUs without AMX, for runs
/// that must round the same on every CPU.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| std::env::var_os("AIRLOCK_NO_AMX").is_none_or(|v| v == "0") && imp::enable())
}

/// bf16 values starting on a cache line, so that each tile row (64 bytes) is one line: twice
/// the speed of tiles that straddle two.
#[derive(Debug)]
struct Lines {
    data: Vec<u16>,
    start: usize,
    len: usize,
}

impl Lines {
    /// `len` zeros.
    fn zeros(len: usize) -> Self {
        let data = vec![0; len + TILE_K];
        let start = data.as_ptr().align_offset(TILE_K * 2);
        assert!(start < TILE_K, "u16s are 2-byte aligned");
        Self { data, start, len }
    }
}

impl std::ops::Deref for Lines {
    type Target = [u16];
    fn deref(&self) -> &[u16] {
        &self.data[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for Lines {
    fn deref_mut(&mut self) -> &mut [u16] {
        &mut self.data[self.start..self.start + self.len]
    }
}

/// `A`: row-major bf16, `[rows, cols]` padded with zeros to whole blocks and tile rows.
#[derive(Debug)]
pub struct Bf16Rows {
    data: Lines, // [rows.next_multiple_of(BLOCK), ld]
    rows: usize,
    ld: usize, // cols.next_multiple_of(TILE_K)
}

impl Bf16Rows {
    /// `x`: `[rows, cols]` row-major.
    pub fn new(x: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(x.len(), rows * cols, "x is [rows, cols]");
        Self::from_rows(rows, cols, |r, out| convert(&x[r * cols..(r + 1) * cols], out))
    }

    /// `[rows, cols]` where `row(r, out)` writes row `r` (`cols` bf16 values).
    pub fn from_rows(rows: usize, cols: usize, mut row: impl FnMut(usize, &mut [u16])) -> Self {
        let ld = cols.next_multiple_of(TILE_K);
        let mut data = Lines::zeros(rows.next_multiple_of(BLOCK) * ld);
        for (r, dst) in data.chunks_exact_mut(ld).take(rows).enumerate() {
            row(r, &mut dst[..cols]);
        }
        Self { data, rows, ld }
    }
}

/// `v` rounded to the nearest bf16 (ties to even), as bits; NaN stays NaN. Integer operations
/// only, so that the loops around it vectorize.
#[inline(always)]
#[cfg_attr(not(all(target_arch = "x86_64", target_os = "linux")), allow(dead_code))]
fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    if bits & 0x7FFF_FFFF > 0x7F80_0000 {
        return (bits >> 16) as u16 | 0x40;
    }
    (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

/// `dst[i] = bf16(src[i])`. Panics unless [`available`].
pub fn convert(src: &[f32], dst: &mut [u16]) {
    assert!(available() && src.len() == dst.len());
    // SAFETY: `available` checked the AVX-512 features `imp::convert` is compiled for.
    unsafe { imp::convert(src, dst) }
}

/// Dequantizes whole blocks of `format` straight to bf16, each value rounded once from the f32
/// the format defines (`q * d + m` for Q4_1, `q * d` for Q8_0); `false`, writing nothing, for
/// formats without a kernel here. Panics unless [`available`].
///
/// Why by hand: the trainer unpacks every base weight twice per sequence, and going through an
/// f32 row and a second pass to round it cost a fifth of a training step.
pub fn dequantize(format: BlockFormat, blocks: &[u8], dst: &mut [u16]) -> bool {
    assert!(available());
    match format {
        // SAFETY (both): `available` checked the features the kernels are compiled for.
        BlockFormat::Q4_1 => unsafe { imp::q4_1(blocks, dst) },
        BlockFormat::Q8_0 => unsafe { imp::q8_0(blocks, dst) },
        _ => return false,
    }
    true
}

/// `dst[2i] = even[i]`, `dst[2i + 1] = odd[i]`.
fn interleave(even: &[u16], odd: &[u16], dst: &mut [u16]) {
    assert!(even.len() == odd.len() && dst.len() == 2 * even.len());
    for ((d, &e), &o) in dst.chunks_exact_mut(2).zip(even).zip(odd) {
        d.copy_from_slice(&[e, o]);
    }
}

/// `B`: `[k, n]` as AMX tiles, zero-padded to whole tiles (and an even number of column tiles).
/// Tile `(nt, kt)` holds rows `32 kt..` and columns `16 nt..`; inside it, element `(k, n)`
/// sits at `(k / 2) * 32 + n * 2 + k % 2`.
#[derive(Debug)]
pub struct Bf16Tiles {
    data: Lines, // [n_tiles, k_tiles, TILE_ELEMS]
    n: usize,
    k_tiles: usize,
    n_tiles: usize,
}

impl Bf16Tiles {
    fn zeros(k: usize, n: usize) -> Self {
        let (k_tiles, n_tiles) = (k.div_ceil(TILE_K), n.div_ceil(BLOCK) * 2);
        Self {
            data: Lines::zeros(n_tiles * k_tiles * TILE_ELEMS),
            n,
            k_tiles,
            n_tiles,
        }
    }

    fn at(&self, k: usize, n: usize) -> usize {
        let tile = (n / TILE_N * self.k_tiles + k / TILE_K) * TILE_ELEMS;
        tile + (k % TILE_K / 2) * 2 * TILE_N + (n % TILE_N) * 2 + k % 2
    }

    /// `B = W^T` for a `W` of `[n, k]`; `row(j, out)` writes row `j` of `W` (`k` bf16 values).
    pub fn transposed(n: usize, k: usize, mut row: impl FnMut(usize, &mut [u16])) -> Self {
        let mut b = Self::zeros(k, n);
        let mut bits = vec![0; k.next_multiple_of(2)];
        for j in 0..n {
            row(j, &mut bits[..k]);
            // Row j of W is column j of B: one bf16 pair per tile row, 64 bytes apart.
            for (kt, chunk) in bits.chunks(TILE_K).enumerate() {
                let at = b.at(kt * TILE_K, j);
                let tile = &mut b.data[at..at + TILE_ELEMS - 2 * TILE_N + 2];
                for (dst, pair) in tile.chunks_mut(2 * TILE_N).zip(chunk.chunks_exact(2)) {
                    dst[..2].copy_from_slice(pair);
                }
            }
        }
        b
    }

    /// `B = W` for a `W` of `[k, n]`; `row(i, out)` writes row `i` of `W` (`n` bf16 values).
    pub fn direct(k: usize, n: usize, mut row: impl FnMut(usize, &mut [u16])) -> Self {
        let mut b = Self::zeros(k, n);
        let (mut even, mut odd) = (vec![0; n], vec![0; n]);
        for i in (0..k).step_by(2) {
            // Rows i and i + 1 of W interleave into one row of each column tile.
            row(i, &mut even);
            match i + 1 < k {
                true => row(i + 1, &mut odd),
                false => odd.fill(0),
            }
            for (nt, (e, o)) in even.chunks(TILE_N).zip(odd.chunks(TILE_N)).enumerate() {
                let at = b.at(i, nt * TILE_N);
                interleave(e, o, &mut b.data[at..at + 2 * e.len()]);
            }
        }
        b
    }
}

/// How [`matmul`] stores its product `p` (`[a.rows, b.n]`) into `out`, whose rows are `ld` apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// `out[i][j] = p[i][j]`.
    Overwrite,
    /// `out[i][j] += p[i][j]`.
    Add,
    /// `out[j][i] = p[i][j]`.
    Transpose,
}

/// `p[i][j] = sum_k a[i][k0 + k] b[k][j]` for `i < a.rows`, `j < b.n`, stored into `out` as
/// `store` says. `k0` is a multiple of [`TILE_K`]; `a` must have the columns `k0..k0 + b`'s
/// rows. Panics unless [`available`].
pub fn matmul(a: &Bf16Rows, k0: usize, b: &Bf16Tiles, out: &mut [f32], ld: usize, store: Store) {
    assert!(available(), "AMX bf16 is not available on this CPU");
    assert!(
        k0.is_multiple_of(TILE_K) && k0 + b.k_tiles * TILE_K <= a.ld,
        "a holds the k columns"
    );
    if a.rows == 0 || b.n == 0 {
        return;
    }
    let (rows, cols) = match store {
        Store::Transpose => (b.n, a.rows),
        Store::Overwrite | Store::Add => (a.rows, b.n),
    };
    assert!(
        ld >= cols && out.len() >= (rows - 1) * ld + cols,
        "out holds [{rows}, {cols}]"
    );
    let mut acc = Block([0.0; 4 * TILE_ROWS * TILE_N]);
    let b_stride = b.k_tiles * TILE_ELEMS;
    let mut product = |r0: usize, nt: usize| {
        let a0 = &a.data[r0 * a.ld + k0..(r0 + BLOCK) * a.ld];
        let b0 = &b.data[nt * b_stride..(nt + 2) * b_stride];
        imp::block(a0, a.ld, b0, b.k_tiles, &mut acc);
        let (rows, cols) = (r0..a.rows.min(r0 + BLOCK), nt * TILE_N..b.n.min((nt + 2) * TILE_N));
        scatter(&acc, out, ld, rows, cols, store);
    };
    imp::configure();
    // The smaller operand is read again for each block of the larger one: it stays in L2 while
    // the larger one streams through once (twice as fast as the other order when it matters).
    let (a_rows, b_pairs) = ((0..a.rows).step_by(BLOCK), (0..b.n_tiles).step_by(2));
    if a.rows.next_multiple_of(BLOCK) <= b.n_tiles * TILE_N {
        b_pairs.for_each(|nt| a_rows.clone().for_each(|r0| product(r0, nt)));
    } else {
        a_rows.for_each(|r0| b_pairs.clone().for_each(|nt| product(r0, nt)));
    }
    imp::release();
}

/// Four 16x16 f32 tiles, in the order (rows 0-15, cols 0-15), (0-15, 16-31), (16-31, 0-15),
/// (16-31, 16-31).
#[repr(C, align(64))]
struct Block([f32; 4 * TILE_ROWS * TILE_N]);

/// Stores the valid part of a block, product rows `rows` and columns `cols`, into `out`.
fn scatter(
    acc: &Block,
    out: &mut [f32],
    ld: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    store: Store,
) {
    // Element (r, c) of the block.
    let at = |r: usize, c: usize| {
        (r / TILE_ROWS * 2 + c / TILE_N) * TILE_ROWS * TILE_N + r % TILE_ROWS * TILE_N + c % TILE_N
    };
    if store == Store::Transpose {
        for (c, j) in cols.enumerate() {
            let dst = &mut out[j * ld + rows.start..j * ld + rows.end];
            dst.iter_mut().enumerate().for_each(|(r, d)| *d = acc.0[at(r, c)]);
        }
        return;
    }
    for (r, i) in rows.enumerate() {
        let row = &mut out[i * ld + cols.start..i * ld + cols.end];
        for (half, dst) in row.chunks_mut(TILE_N).enumerate() {
            let src = &acc.0[at(r, half * TILE_N)..][..dst.len()];
            match store {
                Store::Add => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
                Store::Overwrite | Store::Transpose => dst.copy_from_slice(src),
            }
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use std::arch::asm;
    use std::arch::x86_64::{__cpuid_count, __get_cpuid_max, _mm_cvtph_ps, _mm_cvtsi32_si128, _mm_cvtss_f32};

    use super::{BLOCK, Block, TILE_ELEMS, TILE_K, TILE_N, TILE_ROWS, to_bf16};

    /// `ldtilecfg`'s 64-byte operand: palette 1, tiles 0-7 all 16 rows of 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    pub(super) fn enable() -> bool {
        if __get_cpuid_max(0).0 < 7 {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        const AMX_BF16: u32 = 1 << 22;
        const AMX_TILE: u32 = 1 << 24;
        if edx & AMX_BF16 == 0 || edx & AMX_TILE == 0 {
            return false;
        }
        // Every AMX CPU has these; the conversions below are compiled for them.
        let avx512 = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("f16c");
        if !avx512 {
            return false;
        }
        // Linux hands out the 8 KiB tile state only on request: arch_prctl(ARCH_REQ_XCOMP_PERM,
        // XFEATURE_XTILEDATA), which fails on kernels or hypervisors that do not support it.
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: a plain system call; the kernel clobbers rcx and r11 and nothing else.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }

    /// # Safety
    /// The CPU has AVX-512 F, BW and VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) unsafe fn convert(src: &[f32], dst: &mut [u16]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = to_bf16(s);
        }
    }

    /// `block_q4_1 { half d; half m; u8 qs[16] }` blocks to bf16.
    ///
    /// # Safety
    /// As for [`convert`], and F16C.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    pub(super) unsafe fn q4_1(blocks: &[u8], dst: &mut [u16]) {
        crate::ops::unpack_q4_1(blocks, dst, |bits| half(bits), to_bf16);
    }

    /// `block_q8_0 { half d; i8 qs[32] }` blocks to bf16.
    ///
    /// # Safety
    /// As for [`q4_1`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    pub(super) unsafe fn q8_0(blocks: &[u8], dst: &mut [u16]) {
        crate::ops::unpack_q8_0(blocks, dst, |bits| half(bits), to_bf16);
    }

    /// The f16 `bits`, widened.
    #[target_feature(enable = "f16c")]
    fn half(bits: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }

    /// Loads the tile shapes on this thread (each thread has its own tile state).
    pub(super) fn configure() {
        let mut config = TileConfig([0; 64]);
        config.0[0] = 1; // palette
        for t in 0..8 {
            config.0[16 + 2 * t] = (TILE_K * 2) as u8; // bytes per row
            config.0[48 + t] = TILE_ROWS as u8;
        }
        // SAFETY: the caller checked `available`, so the CPU has AMX and Linux granted it.
        unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };
    }

    /// Returns the tile state to the initial one, so context switches stop saving it.
    pub(super) fn release() {
        // SAFETY: as in `configure`.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }

    /// One 32x32 output block: `a` holds the block's 32 rows from its first `k` column on, rows
    /// `lda` apart; `b` the block's two column tiles, `k_tiles` tiles each.
    pub(super) fn block(a: &[u16], lda: usize, b: &[u16], k_tiles: usize, acc: &mut Block) {
        assert!(a.len() >= (BLOCK - 1) * lda + k_tiles * TILE_K && b.len() >= 2 * k_tiles * TILE_ELEMS);
        let (sa, sb) = (lda * 2, TILE_K * 2); // row strides in bytes
        let (a, b) = (a.as_ptr(), b.as_ptr());
        // SAFETY: `configure` ran on this thread; every tile read lies inside `a` or `b`
        // (asserted above: 16 rows of 64 bytes from each pointer), and the four stores fill
        // `acc` (4 x 1 KiB).
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
            for kt in 0..k_tiles {
                asm!(
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {sb}*1]",
                    "tileloadd tmm7, [{b1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a.add(kt * TILE_K),
                    a1 = in(reg) a.add(TILE_ROWS * lda + kt * TILE_K),
                    b0 = in(reg) b.add(kt * TILE_ELEMS),
                    b1 = in(reg) b.add((k_tiles + kt) * TILE_ELEMS),
                    sa = in(reg) sa,
                    sb = in(reg) sb,
                    options(nostack, readonly),
                );
            }
            let c = acc.0.as_mut_ptr();
            let tile = TILE_ROWS * TILE_N;
            asm!(
                "tilestored [{c0} + {s}*1], tmm0",
                "tilestored [{c1} + {s}*1], tmm1",
                "tilestored [{c2} + {s}*1], tmm2",
                "tilestored [{c3} + {s}*1], tmm3",
                c0 = in(reg) c,
                c1 = in(reg) c.add(tile),
                c2 = in(reg) c.add(2 * tile),
                c3 = in(reg) c.add(3 * tile),
                s = in(reg) TILE_N * 4,
                options(nostack),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use super::Block;

    pub(super) fn enable() -> bool {
        false
    }
    pub(super) unsafe fn convert(_: &[f32], _: &mut [u16]) {
        unreachable!("callers check `available`")
    }
    pub(super) unsafe fn q4_1(_: &[u8], _: &mut [u16]) {
        unreachable!("callers check `available`")
    }
    pub(super) unsafe fn q8_0(_: &[u8], _: &mut [u16]) {
        unreachable!("callers check `available`")
    }
    pub(super) fn configure() {
        unreachable!("matmul checks `available`")
    }
    pub(super) fn release() {}
    pub(super) fn block(_: &[u16], _: usize, _: &[u16], _: usize, _: &mut Block) {
        unreachable!("matmul checks `available`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use airlock_gguf::GgmlType;
    use half::bf16;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Whether this CPU lacks AMX tiles, saying so: the tests that need them then pass without
    /// checking anything.
    fn skipped_without_amx() -> bool {
        if !available() {
            eprintln!("skipped: this CPU has no AMX bf16 tiles");
        }
        !available()
    }

    fn round(v: f32) -> f32 {
        bf16::from_f32(v).to_f32()
    }

    #[test]
    fn bf16_rounding_is_halfs() {
        let mut rng = StdRng::seed_from_u64(5);
        let edges = [
            0.0,
            -0.0,
            1.0,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-40,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        // Exact ties: the bit just below bf16's last one set, and nothing under it.
        let ties = [
            f32::from_bits(0x3F80_8000),
            f32::from_bits(0x3F81_8000),
            f32::from_bits(0xBF80_8000),
        ];
        let random = (0..10_000).map(|_| f32::from_bits(rng.random::<u32>()));
        for v in edges.into_iter().chain(ties).chain(random) {
            let want = bf16::from_f32(v);
            match v.is_nan() {
                true => assert!(bf16::from_bits(to_bf16(v)).is_nan(), "{v:e}"),
                false => assert_eq!(to_bf16(v), want.to_bits(), "{v:e}"),
            }
        }
    }

    #[test]
    fn tile_products_equal_f32_products_of_the_bf16_operands() {
        if skipped_without_amx() {
            return;
        }
        let mut rng = StdRng::seed_from_u64(3);
        // Ragged on every axis: rows, k and n not multiples of a block or tile.
        let (m, k, n, k0) = (37, 70, 45, 32);
        let cols = k0 + k;
        let x: Vec<f32> = (0..m * cols).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect(); // [n, k]
        let a = Bf16Rows::new(&x, m, cols);
        let expected =
            |i: usize, j: usize| -> f32 { (0..k).map(|t| round(x[i * cols + k0 + t]) * round(w[j * k + t])).sum() };
        // B = W^T, overwriting and transposed; B = W^T again from W^T's rows (`direct`), adding.
        let transposed = Bf16Tiles::transposed(n, k, |j, row| convert(&w[j * k..(j + 1) * k], row));
        let direct = Bf16Tiles::direct(k, n, |t, row| {
            let column: Vec<f32> = (0..n).map(|j| w[j * k + t]).collect();
            convert(&column, row);
        });
        for (b, store) in [
            (&transposed, Store::Overwrite),
            (&direct, Store::Add),
            (&transposed, Store::Transpose),
        ] {
            // `out` is [m, ld] with ld = n + 3, or [n, ld] with ld = m + 3 when transposed.
            let (rows, ld) = if store == Store::Transpose {
                (n, m + 3)
            } else {
                (m, n + 3)
            };
            let start: Vec<f32> = (0..rows * ld).map(|i| i as f32).collect();
            let mut out = start.clone();
            matmul(&a, k0, b, &mut out, ld, store);
            for i in 0..m {
                for j in 0..n + 3 {
                    let at = if store == Store::Transpose {
                        j * ld + i
                    } else {
                        i * ld + j
                    };
                    let (got, before) = match at < out.len() {
                        true => (out[at], start[at]),
                        false => continue, // past the last row of the transposed `out`
                    };
                    let want = match (j < n, store) {
                        (false, _) => before,
                        (true, Store::Add) => before + expected(i, j),
                        (true, _) => expected(i, j),
                    };
                    assert!(
                        (got - want).abs() < 1e-3 * (1.0 + want.abs()),
                        "[{i}, {j}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn dequantized_blocks_are_the_rounded_values_of_the_gguf_format() {
        if skipped_without_amx() {
            return;
        }
        let mut rng = StdRng::seed_from_u64(4);
        let values: Vec<f32> = (0..32 * 9).map(|_| rng.random_range(-3.0f32..2.0)).collect();
        for (ty, format) in [(GgmlType::Q4_1, BlockFormat::Q4_1), (GgmlType::Q8_0, BlockFormat::Q8_0)] {
            let blocks = airlock_gguf::quantize(ty, &values).expect("quantizes");
            let mut exact = vec![0.0; values.len()];
            airlock_gguf::dequantize(ty, &blocks, &mut exact).expect("dequantizes");
            let mut got = vec![0; values.len()];
            assert!(dequantize(format, &blocks, &mut got));
            let want: Vec<u16> = exact.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
            assert_eq!(got, want, "{ty:?}");
        }
        assert!(!dequantize(BlockFormat::Q6_K, &[], &mut []), "no kernel for Q6_K here");
    }
}
