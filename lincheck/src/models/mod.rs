//! Ready-made models: a key/value store partitioned by key, and a compare-and-set register.

pub mod kv;
pub mod register;
