//! The soak (`make soak`, issue 29): a mixed load against a local API of its own while a
//! seeded nemesis breaks what it stands on, every request kept in a [`history`], and a
//! [`check`]er that reads the history and the tables afterwards.
//!
//! - [`history`]: what the clients sent and got, with their start and end times.
//! - [`nemesis`]: the seeded fault schedule (the same seed, the same schedule).
//! - [`check`]: the checker — pure functions over the history and what the tables hold,
//!   each unit-tested against a history that breaks it.
//!
//! The runner that starts the processes, drives the load and reads the tables is the
//! `rushcart-soak` binary (tests/src/bin/soak.rs).

pub mod check;
pub mod history;
pub mod nemesis;
