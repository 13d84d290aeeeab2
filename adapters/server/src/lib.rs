//! The `castellan` binary's library: the only crate that wires everything.
//!
//! Map of the modules:
//! - [`cli`]: the command line (clap) and dispatch.
//! - [`config`]: TOML + `CASTELLAN_SECTION_KEY` environment + `*_FILE` secrets.
//! - [`backends`]: opening the event log (SQLite or NATS JetStream) and the read
//!   store (SQLite or PostgreSQL) that the configuration names.
//! - [`data_dir`]: owner-only files, and one serving process per data directory.
//! - [`metered`]: the event-log decorator that counts appends for `/metrics`.
//! - [`node`]: a running node: projections, HTTP API, management listener; ordered shutdown.
//! - [`management`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`commands`]: one file per subcommand (serve, quickstart, bootstrap, events tail,
//!   projections rebuild).
//! - [`logging`]: tracing setup (text or JSON).

/// mimalloc instead of the system allocator: the materializer and the query engine make
/// many small allocations from several threads, where glibc's malloc spent about a
/// quarter of the insights benchmark's time. Here, so every binary that runs a node
/// (castellan, the test server, the benchmarks) uses it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tunes mimalloc for the materializer (and glibc malloc for the C libraries). Lets
/// freed memory wait ten seconds before mimalloc returns it to the system (the
/// default is 10 ms). The materializer frees a flush's rows and allocates the next
/// batch's right after; pages returned in between come back zeroed by the kernel
/// (`clear_page_erms` was 39% of a profile of the insights benchmark's conversion,
/// and with purging off that conversion took 4.7 µs an event instead of 9.9 µs).
/// Flushes come about a second apart, so a one-second delay still returned most of
/// a flush's memory before the next one: 10M events materialized at 171.6k and
/// 185.8k events/s with it, 183.0k and 195.8k with ten seconds (runs alternated).
pub fn tune_allocator() {
    // `mi_option_purge_delay` in mimalloc 2 and 3's option enum.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a plain integer option; mimalloc reads it on each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
    // `mi_option_page_reclaim_on_free` in mimalloc 3's option enum (the crate's
    // default). Memory is freed on other threads than it was allocated on (the log
    // reader's events on a converting thread, columns on an encoding one, and
    // blocking-pool threads come and go): a page whose thread is gone is taken over
    // by the thread freeing into it, instead of fresh pages being faulted in and
    // zeroed. Measured on the insights materializer (3M events, 4 alternated runs):
    // 27.7-32.4 CPU-s with it, 32.5-37.6 without.
    const MI_OPTION_PAGE_RECLAIM_ON_FREE: libmimalloc_sys::mi_option_t = 35;
    // SAFETY: as above.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PAGE_RECLAIM_ON_FREE, 1) };
    // C libraries (zstd) allocate with glibc's malloc. A zstd context is over 128 KiB,
    // so glibc maps each one fresh and unmaps it on free, and Parquet makes one per
    // column chunk read or written: every small file paid for zeroed pages. Keeping
    // blocks up to 32 MiB in the heap took a 7-day insights query from 22 to 14 ms.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc malloc's thresholds.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

pub mod backends;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data_dir;
pub mod logging;
pub mod management;
pub mod metered;
pub mod node;
