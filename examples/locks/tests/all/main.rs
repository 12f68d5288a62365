//! The integration tests of `locks`, compiled as one test binary (one link, one
//! copy of the dependencies' generic code): `cargo test -p locks --test all`.

mod codec_props;
mod locks;
