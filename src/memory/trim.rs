//! Handing back the executable's start-up pages once the gateway runs (idle RSS).
//!
//! Most of an idle gateway's resident memory is not heap but its own code: start-up runs
//! code a running gateway never needs again (the CLI, config parsing and checks, TLS and
//! listener set-up), and on every page fault in the executable the kernel maps up to
//! 64 KiB of neighbouring pages that are already in the page cache ("fault-around"). So
//! after start-up about 9 of the 12 MiB of code and most read-only data count in the
//! process's RSS, while an idle gateway touches a few MiB of it.
//!
//! [`release_startup_pages`] asks the kernel to reclaim the executable's read-only pages
//! (`madvise(MADV_PAGEOUT)`; they are clean, so this frees them, unless another process
//! maps them too). A page the gateway touches again is read back from the file (a major
//! fault: the first request after start-up pays for the code it runs), so what stays
//! resident is what the running gateway uses. Merely unmapping the pages
//! (`MADV_DONTNEED`) is not enough: they stay in the page cache, and the next faults map
//! most of them back through fault-around. Measured on a profiling build (BENCHMARKS.md,
//! "Idle RSS"): idle RSS 13.3–14.3 MiB before, 5.5–8.5 MiB after, about 10 MiB once
//! `/metrics` has been scraped.
//!
//! What makes this sound: only `PT_LOAD` segments without write permission are touched,
//! rounded inward to whole pages. Their pages are never written (a position-independent
//! executable has no text relocations; the relocated data, RELRO, lives in a writable
//! segment and is left alone), so unmapping them loses nothing: a private file mapping
//! refills from the file.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

/// The executable's read-only segments: (start address, length in bytes) each.
#[derive(Default)]
struct Segments(Vec<(usize, usize)>);

/// Hands the executable's read-only pages back to the kernel; returns the bytes of
/// address range handed back (not all of it was resident).
#[must_use]
pub fn release_startup_pages() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut segments = Segments::default();
    // SAFETY: `visit` only reads the `dl_phdr_info` the loader passes for the duration of
    // the call, and `data` is the `Segments` borrowed here for the whole call.
    unsafe {
        libc::dl_iterate_phdr(Some(visit), (&raw mut segments).cast::<c_void>());
    }
    let mut released = 0;
    for (start, len) in segments.0 {
        // Inward to whole pages: a page shared with a writable segment is never touched.
        let first = start.div_ceil(page) * page;
        let end = (start + len) / page * page;
        if end <= first {
            continue;
        }
        let (addr, len) = (first as *mut c_void, end - first);
        // SAFETY: [first, end) lies inside a read-only, file-backed segment of this
        // executable that nothing writes (see the module's comment): reclaiming or
        // unmapping its pages changes no memory contents the program can observe; they
        // refill from the file.
        let mut rc = unsafe { libc::madvise(addr, len, libc::MADV_PAGEOUT) };
        if rc != 0 {
            // Kernels before 5.4 have no MADV_PAGEOUT: unmap only.
            // SAFETY: as above.
            rc = unsafe { libc::madvise(addr, len, libc::MADV_DONTNEED) };
        }
        if rc == 0 {
            released += end - first;
        }
    }
    released
}

/// `dl_iterate_phdr`'s callback: records the first object's (the executable's)
/// read-only `PT_LOAD` segments and stops.
unsafe extern "C" fn visit(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut c_void,
) -> c_int {
    // SAFETY: the loader passes a valid `dl_phdr_info` for the call; `data` is the
    // `Segments` given to `dl_iterate_phdr` above.
    let (info, out) = unsafe { (&*info, &mut *data.cast::<Segments>()) };
    let base = usize::try_from(info.dlpi_addr).unwrap_or(0);
    for i in 0..usize::from(info.dlpi_phnum) {
        // SAFETY: `dlpi_phdr` points at `dlpi_phnum` program headers.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_W == 0 {
            let (Ok(vaddr), Ok(len)) = (usize::try_from(ph.p_vaddr), usize::try_from(ph.p_memsz))
            else {
                continue;
            };
            out.0.push((base + vaddr, len));
        }
    }
    // The first object is the main program: stop after it.
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_runs_again_after_its_pages_were_handed_back() {
        fn work(n: u64) -> u64 {
            (1..=n).map(|i| i * i % 7).sum()
        }
        let before = work(1000);
        let released = release_startup_pages();
        assert!(released > 0, "no read-only segment was found");
        // The code and read-only data just released run and read correctly again.
        assert_eq!(work(1000), before);
        let text = format!("{:?}", std::hint::black_box(["a", "b"]));
        assert_eq!(text, r#"["a", "b"]"#);
    }
}
