// SPDX-License-Identifier: GPL-2.0

//! The wrapper layer: thin safe types over `kernel::bindings` and the C
//! helpers in `helpers.c`, for what the kernel crate does not offer yet.
//!
//! Every `unsafe` of the module lives below this directory.

pub mod blk;
pub mod misc;
