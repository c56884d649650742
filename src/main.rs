//! The `pigeon` command-line interface.
fn main() {}
