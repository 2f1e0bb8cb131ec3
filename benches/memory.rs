//! Memory per cached entry, ours against each peer, with a counting allocator.
//!
//! Rust allocations are counted by a global allocator wrapping `System`; OpenSSL's
//! by routing libcrypto's allocator (`CRYPTO_set_mem_functions`, set before
//! OpenSSL allocates anything) through counting functions. Both count the bytes
//! *requested* (malloc's own per-chunk header, 8–16 bytes on glibc, is not
//! included; the allocation count per entry is reported so it can be added).
//!
//! For each implementation and each fill `n` (16 384 = the mixed workloads'
//! preload; 20 480 = full at the default capacity):
//!
//! 1. start counting, make a cache with capacity 20 480 (what it preallocates
//!    for that capacity counts);
//! 2. make `n` sessions (id + 128-byte payload) the way a server would hand them
//!    to that cache;
//! 3. add them all, then drop the caller's handles, so the cache is the only
//!    owner of what it keeps;
//! 4. report `bytes now / n` as the total per entry, and that minus the
//!    128-byte payload as the overhead; "added by insert" is what the adds
//!    alone allocated (the container's share, sessions already made).
//!
//! Output: a table on stdout and `target/criterion/memory/memory.json` for
//! `scripts/plot_benches.py`. Run: `cargo bench --bench memory`.

mod common;

use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

// ------------------------------------------------------------ counting

static BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards to `System` and only adds relaxed counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        BYTES.fetch_add(l.size() as isize, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        BYTES.fetch_add(l.size() as isize, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        BYTES.fetch_sub(l.size() as isize, Relaxed);
        ALLOCS.fetch_sub(1, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        BYTES.fetch_add(new as isize - l.size() as isize, Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

extern "C" {
    fn malloc(n: usize) -> *mut c_void;
    fn realloc(p: *mut c_void, n: usize) -> *mut c_void;
    fn free(p: *mut c_void);
    fn CRYPTO_set_mem_functions(
        m: unsafe extern "C" fn(usize, *const c_char, c_int) -> *mut c_void,
        r: unsafe extern "C" fn(*mut c_void, usize, *const c_char, c_int) -> *mut c_void,
        f: unsafe extern "C" fn(*mut c_void, *const c_char, c_int),
    ) -> c_int;
}

/// Header in front of every OpenSSL allocation: its requested size.
const HDR: usize = 16;

unsafe extern "C" fn ossl_malloc(n: usize, _: *const c_char, _: c_int) -> *mut c_void {
    // SAFETY: plain libc calls; the header is within the block we allocated.
    unsafe {
        let p = malloc(n + HDR) as *mut u8;
        if p.is_null() {
            return p.cast();
        }
        (p as *mut usize).write(n);
        BYTES.fetch_add(n as isize, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        p.add(HDR).cast()
    }
}

unsafe extern "C" fn ossl_free(p: *mut c_void, _: *const c_char, _: c_int) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` came from `ossl_malloc`/`ossl_realloc`: the header precedes it.
    unsafe {
        let base = (p as *mut u8).sub(HDR);
        let n = (base as *const usize).read();
        BYTES.fetch_sub(n as isize, Relaxed);
        ALLOCS.fetch_sub(1, Relaxed);
        free(base.cast());
    }
}

unsafe extern "C" fn ossl_realloc(
    p: *mut c_void,
    n: usize,
    f: *const c_char,
    l: c_int,
) -> *mut c_void {
    // SAFETY: as above.
    unsafe {
        if p.is_null() {
            return ossl_malloc(n, f, l);
        }
        if n == 0 {
            ossl_free(p, f, l);
            return std::ptr::null_mut();
        }
        let base = (p as *mut u8).sub(HDR);
        let old = (base as *const usize).read();
        let nb = realloc(base.cast(), n + HDR) as *mut u8;
        if nb.is_null() {
            return nb.cast();
        }
        (nb as *mut usize).write(n);
        BYTES.fetch_add(n as isize - old as isize, Relaxed);
        nb.add(HDR).cast()
    }
}

fn bytes() -> isize {
    BYTES.load(Relaxed)
}
fn allocs() -> isize {
    ALLOCS.load(Relaxed)
}

// ------------------------------------------------------------ measuring

struct Row {
    name: &'static str,
    n: usize,
    total: f64,
    container: f64,
    allocs: f64,
    len: usize,
}

fn measure<C: Peer>(n: usize) -> Row {
    let ids = random_ids(n, 0xA11C + n as u64);
    let pay = payload(7);
    // Let lazily made per-thread or global state (epoch handle, moka's
    // housekeeper, OpenSSL's per-thread error state) appear before counting,
    // on a throwaway instance.
    {
        let cache = C::new(CAPACITY);
        let mut l = cache.local();
        let warm = random_ids(1, 0xDEAD);
        let o = cache.make(&warm[0], &pay);
        cache.add(&mut l, &o);
        cache.get(&mut l, &warm[0]);
        cache.remove(&mut l, &o);
        let _ = cache.len();
    }
    // Counted from here: the cache's own allocations (tables preallocated for
    // the capacity included), the sessions and what adding them costs.
    let (b_start, a_start) = (bytes(), allocs());
    let cache = C::new(CAPACITY);
    let mut l = cache.local();
    let objs: Vec<C::Obj> = ids.iter().map(|id| cache.make(id, &pay)).collect();
    let b_objs = bytes();
    for o in &objs {
        cache.add(&mut l, o);
    }
    let len = cache.len();
    let b_added = bytes();
    drop(objs); // the cache is now the only owner of what it keeps
    let _ = cache.len(); // moka: apply pending work
    let (b_end, a_end) = (bytes(), allocs());
    let row = Row {
        name: C::NAME,
        n,
        total: (b_end - b_start) as f64 / n as f64,
        container: (b_added - b_objs) as f64 / n as f64,
        allocs: (a_end - a_start) as f64 / n as f64,
        len,
    };
    drop(l);
    drop(cache);
    row
}

fn main() {
    // First thing: OpenSSL must not have allocated anything yet.
    // SAFETY: the three functions have libcrypto's signatures and never unwind.
    let ok = unsafe { CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) };
    assert_eq!(
        ok, 1,
        "CRYPTO_set_mem_functions must run before OpenSSL allocates"
    );

    let mut rows = Vec::new();
    for n in [PRELOAD, CAPACITY] {
        rows.push(measure::<Ours>(n));
        rows.push(measure::<OpenSsl>(n));
        rows.push(measure::<Rustls>(n));
        rows.push(measure::<Moka>(n));
        rows.push(measure::<Quick>(n));
        rows.push(measure::<Dash>(n));
        rows.push(measure::<DashFold>(n));
        rows.push(measure::<MutexMap>(n));
        rows.push(measure::<Hashbrown>(n));
    }

    println!(
        "| implementation | entries | held | bytes/entry total | beyond 128-B payload | of which container (add) | allocations/entry |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} |",
            r.name,
            r.n,
            if r.len == usize::MAX {
                "?".to_string()
            } else {
                r.len.to_string()
            },
            r.total,
            r.total - PAYLOAD_LEN as f64,
            r.container,
            r.allocs
        );
    }

    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let dir = std::path::Path::new(&dir).join("criterion").join("memory");
    std::fs::create_dir_all(&dir).expect("create output dir");
    let json: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"impl\":\"{}\",\"entries\":{},\"total\":{:.2},\"overhead\":{:.2},\"container\":{:.2},\"allocs\":{:.3}}}",
                r.name,
                r.n,
                r.total,
                r.total - PAYLOAD_LEN as f64,
                r.container,
                r.allocs
            )
        })
        .collect();
    std::fs::write(dir.join("memory.json"), format!("[{}]\n", json.join(",\n")))
        .expect("write memory.json");
}
