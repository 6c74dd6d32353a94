//! Handing freed heap memory back to the operating system.
//!
//! A query over many series allocates a buffer per series and frees them all
//! when it answers. glibc's allocator keeps freed chunks that lie below the top
//! of its heaps resident for reuse; only the top is returned by `free`. After a
//! burst of large queries the process therefore stays at its high-water mark,
//! twice what it needs to serve blocks (bench/blocks-memory.sh measured 343 MiB
//! anonymous memory after promql.sh's queries, 158 MiB once trimmed). Every few
//! seconds, when the allocator holds more than [`RELEASE_ABOVE_BYTES`] free and
//! its state changed since the last pass, `malloc_trim` returns the whole free
//! pages inside its free chunks (`madvise(MADV_DONTNEED)`); a later allocation
//! there costs a page fault, nothing more.
//!
//! Only glibc has these calls; elsewhere this module does nothing.

use std::time::Duration;

/// The allocator's free bytes above which they are handed back.
pub(crate) const RELEASE_ABOVE_BYTES: usize = 32 << 20;
/// How often the allocator is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(5);

/// What the allocator holds: bytes in use and bytes free in its arenas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HeapState {
    pub(crate) in_use: usize,
    pub(crate) free: usize,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn heap_state() -> Option<HeapState> {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
    let info = unsafe { libc::mallinfo2() };
    Some(HeapState { in_use: info.uordblks, free: info.fordblks })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn heap_state() -> Option<HeapState> {
    None
}

/// Returns the free heap pages to the system. Returns whether any was returned.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn trim() -> bool {
    // SAFETY: malloc_trim only reorganises the allocator's own free memory.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn trim() -> bool {
    false
}

/// Whether a pass should trim: enough is free and something changed since
/// `last` (the state after the previous trim), so an idle process is not
/// trimmed again and again.
pub(crate) fn should_trim(state: HeapState, last: Option<HeapState>, above: usize) -> bool {
    state.free > above && last != Some(state)
}

/// Looks at the allocator every few seconds, off the runtime's threads, and
/// trims it when [`should_trim`] says so, until `stop` turns true.
pub(crate) fn spawn_releaser(mut stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<HeapState> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = stop.changed() => return,
            }
            let Some(state) = heap_state() else { return };
            if !should_trim(state, last, RELEASE_ABOVE_BYTES) {
                continue;
            }
            let trimmed = tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let returned = trim();
                (returned, started.elapsed())
            })
            .await;
            if let Ok((returned, took)) = trimmed {
                last = heap_state();
                tracing::debug!(
                    free_bytes = state.free,
                    in_use_bytes = state.in_use,
                    returned,
                    seconds = took.as_secs_f64(),
                    "free heap memory handed back to the system"
                );
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_only_above_the_bound_and_after_a_change() {
        let state = HeapState { in_use: 10 << 20, free: 64 << 20 };
        assert!(should_trim(state, None, 32 << 20));
        assert!(!should_trim(state, Some(state), 32 << 20), "nothing changed since the last trim");
        assert!(should_trim(state, Some(HeapState { in_use: 11 << 20, ..state }), 32 << 20));
        assert!(!should_trim(HeapState { free: 16 << 20, ..state }, None, 32 << 20));
    }

    /// Whether each page of `[start, start + length)` is resident.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn resident_pages(start: usize, length: usize) -> Vec<bool> {
        let mut pages = vec![0u8; length.div_ceil(4096)];
        // SAFETY: mincore only reads the page tables of the range; the range lies in
        // the allocator's heap, which stays mapped (the test holds the blocks around it).
        let status = unsafe { libc::mincore(start as *mut libc::c_void, length, pages.as_mut_ptr()) };
        assert_eq!(status, 0, "mincore: {}", std::io::Error::last_os_error());
        pages.into_iter().map(|page| page & 1 == 1).collect()
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_chunks_inside_the_heap_stop_being_resident() {
        const BLOCK: usize = 64 << 10;
        // Every other block freed: free chunks between live ones, which free() keeps resident.
        let blocks: Vec<Vec<u8>> = (0..512).map(|index| vec![index as u8 | 1; BLOCK]).collect();
        let mut kept = Vec::new();
        let mut freed = Vec::new();
        for (index, block) in blocks.into_iter().enumerate() {
            if index % 2 == 0 {
                // The whole pages strictly inside the block.
                let start = (block.as_ptr() as usize).next_multiple_of(4096) + 4096;
                freed.push(start);
                drop(block);
            } else {
                kept.push(block);
            }
        }
        let interior = BLOCK - 3 * 4096;
        let resident = |starts: &[usize]| -> usize {
            starts.iter().map(|&start| resident_pages(start, interior).into_iter().filter(|&page| page).count()).sum()
        };
        let before = resident(&freed);
        assert!(trim());
        let after = resident(&freed);
        assert!(after * 4 < before, "resident pages of the freed blocks: {before} before the trim, {after} after");
        assert!(kept.iter().all(|block| block.iter().all(|&byte| byte & 1 == 1)), "live blocks keep their bytes");
    }
}
