//! The integration tests of `labrpc`, compiled as one test binary (one link, one
//! copy of the dependencies' generic code): `cargo test -p labrpc --test all`.

mod determinism;
mod network;
mod rules;
mod sim;
