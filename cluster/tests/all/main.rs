//! The integration tests of `cluster`, compiled as one test binary (one link, one
//! copy of the dependencies' generic code): `cargo test -p cluster --test all`.

mod decode_props;
mod removed;
mod storage;
mod storage_conformance;
