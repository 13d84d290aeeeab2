//! The `castellan` binary's library: the only crate that wires everything.
//!
//! Map of the modules:
//! - [`cli`]: the command line (clap) and dispatch.
//! - [`config`]: TOML + `CASTELLAN_SECTION_KEY` environment + `*_FILE` secrets.
//! - [`backends`]: opening the event log (SQLite or NATS JetStream) and the read
//!   store (SQLite or PostgreSQL) that the configuration names.
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

pub mod backends;
pub mod cli;
pub mod commands;
pub mod config;
pub mod logging;
pub mod management;
pub mod metered;
pub mod node;
