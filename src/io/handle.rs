// SPDX-License-Identifier: GPL-2.0

//! A request run against the backing file by a worker, as
//! `do_req_filebacked()`: reads and writes buffered or submitted as direct
//! I/O, flushes, discards and write-zeroes.

use kernel::prelude::*;

use crate::device::{IoConfig, LoopDevice};
use crate::sys::{
    blk::{BlkStatus, DirectMode, ReqOp, Request},
    file::falloc,
};

impl LoopDevice {
    // --- I/O ----------------------------------------------------------------

    /// Runs one request against the backing file, as `do_req_filebacked()`
    /// does: to its end for buffered I/O, or until it is submitted for
    /// direct I/O.
    pub(super) fn handle(io: &IoConfig, rq: Request) {
        // A flush has no position (its sector is all ones), so the sum may
        // wrap; it is only used by the operations that have one.
        let pos = rq.pos().wrapping_add(io.offset);
        let bytes = rq.bytes();
        let result = match rq.op() {
            ReqOp::Flush => io
                .file
                .fsync()
                .map_err(|e| if e == EINVAL { e } else { EIO }),
            ReqOp::Discard => Self::fallocate(io, falloc::PUNCH_HOLE, pos, bytes),
            ReqOp::WriteZeroes => {
                let mode = if rq.no_unmap() {
                    falloc::ZERO_RANGE
                } else {
                    falloc::PUNCH_HOLE
                };
                Self::fallocate(io, mode, pos, bytes)
            }
            ReqOp::Read | ReqOp::Write if io.direct => {
                // Ends in `direct_done`.
                let write = rq.op() == ReqOp::Write;
                let submitted =
                    rq.submit_direct::<Self>(io.file.clone_ref(), pos, write, DirectMode::Blocking);
                // A blocking submission always takes the request.
                if let Err(rq) = submitted {
                    rq.end(BlkStatus::io_error());
                }
                return;
            }
            ReqOp::Read | ReqOp::Write => {
                let result = rq.transfer(&io.file, pos, rq.op() == ReqOp::Write);
                return Self::finish_rw(rq, result);
            }
            ReqOp::Other => Err(EIO),
        };
        rq.end(match result {
            Ok(()) => BlkStatus::OK,
            Err(e) => BlkStatus::from_error(e),
        });
    }

    fn fallocate(io: &IoConfig, mode: i32, pos: u64, len: u32) -> Result {
        if !io.discard {
            return Err(EOPNOTSUPP);
        }
        match io.file.fallocate(mode | falloc::KEEP_SIZE, pos, len.into()) {
            Err(e) if e != EINVAL && e != EOPNOTSUPP => Err(EIO),
            other => other,
        }
    }
}
