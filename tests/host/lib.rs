//! The module's pure logic, compiled for the host so that `cargo test` checks
//! it in milliseconds. The files are the module's own, included by path.

#[path = "../../src/uapi.rs"]
pub mod uapi;

#[path = "../../src/params.rs"]
pub mod params;

#[path = "../../src/direct_io.rs"]
pub mod direct_io;
