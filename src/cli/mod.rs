//! What the `oxport` command does once its arguments are parsed: the
//! export flows (`export`, `self-image`) with their embedded server and
//! destination, and the other commands' runs and reports.
//!
//! Why in the library: the binary then holds argument parsing only, and
//! these flows can be unit-tested like the rest of the crate.

pub mod commands;
pub mod export;
pub mod self_image;
pub mod signing;
pub mod summary;
