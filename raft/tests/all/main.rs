//! The integration tests of `raft`, compiled as one test binary (one link, one
//! copy of the dependencies' generic code): `cargo test -p raft --test all`.

mod common;
mod core_rules;
mod decode_props;
mod extensions;
mod membership;
mod scenarios;
