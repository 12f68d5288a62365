//! The integration tests of `raftcheck`, compiled as one test binary (one link, one
//! copy of the dependencies' generic code): `cargo test -p raftcheck --test all`.

mod conformance;
mod search;
