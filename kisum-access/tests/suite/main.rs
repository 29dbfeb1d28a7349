//! kisum-access integration suite: one test binary for the QA scenarios, the properties of DESIGN.md §4
//! over generated worlds, and the directory's write rules and concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod directory;
mod properties;
mod reference;
mod scenarios;
mod worlds;
mod writes;
