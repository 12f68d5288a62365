//! Test harnesses (in progress).
