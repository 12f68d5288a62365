//! The integration tests of `lincheck`, compiled as one test binary (one link, one
//! copy of the dependencies' generic code): `cargo test -p lincheck --test all`.

mod common;
mod histories;
mod parse_props;
mod testdata;
