//! Loom models of tls-session-cache: the shared helpers. The models themselves are
//! in `tests/loom_*.rs`, one file per component; `run.sh` runs them and
//! `mutants.sh` checks that each planted bug makes its model fail. See
//! `docs/LOOM.md` for what they cover and what they take on trust.
//!
//! Everything here (and every model file) compiles to nothing unless the crate is
//! built with `--cfg tls_session_cache_loom --cfg crossbeam_loom`, so a plain
//! `cargo test --workspace` builds and passes without loom.

#[cfg(tls_session_cache_loom)]
mod helpers;

#[cfg(tls_session_cache_loom)]
pub use helpers::*;
