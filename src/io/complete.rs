// SPDX-License-Identifier: GPL-2.0

//! The end of a read or write, buffered or direct, as `lo_complete_rq()`.

use kernel::prelude::*;

use crate::device::LoopDevice;
use crate::sys::blk::{BlkStatus, ReqOp, Request};

impl LoopDevice {
    /// Ends a read or write that moved `result` bytes, buffered or direct,
    /// as `lo_complete_rq()`. A short write is not an error, as in C.
    pub(super) fn finish_rw(rq: Request, result: Result<usize>) {
        let status = match result {
            Ok(n) if n == rq.bytes() as usize || rq.op() != ReqOp::Read => BlkStatus::OK,
            // Short read: finish what was read and retry the rest.
            Ok(n) if n > 0 => return rq.advance_and_requeue(n as u32),
            // Nothing left to read (past the end of the file).
            Ok(_) => {
                rq.zero_fill();
                BlkStatus::io_error()
            }
            Err(e) => BlkStatus::from_error(e),
        };
        rq.end(status);
    }
}
