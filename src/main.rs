//! The `isola` binary.
fn main() {}
