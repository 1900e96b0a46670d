// SPDX-License-Identifier: GPL-2.0

//! A request run against the backing file by a worker, as
//! `do_req_filebacked()`: reads and writes buffered or submitted as direct
//! I/O, flushes, discards and write-zeroes.

use kernel::prelude::*;

use crate::device::{IoConfig, LoopDevice};
use crate::sys::{
    blk::{BlkStatus, DirectMode, DiskRef, ReqOp, Request},
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
        let result = match rq.op() {
            ReqOp::Flush => io
                .file
                .fsync()
                .map_err(|e| if e == EINVAL { e } else { EIO }),
            ReqOp::Discard => Self::fallocate(io, &rq, falloc::PUNCH_HOLE),
            ReqOp::WriteZeroes => {
                let mode = if rq.no_unmap() {
                    falloc::ZERO_RANGE
                } else {
                    falloc::PUNCH_HOLE
                };
                Self::fallocate(io, &rq, mode)
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

    /// A discard or write-zeroes as `lo_fallocate()`: `fallocate` of the
    /// request's range with `mode`.
    ///
    /// Never inlined, nor is [`Self::clear_limits`]: their locals (a whole
    /// `queue_limits` among them) would otherwise sit in the frame of
    /// every request a worker runs, direct I/O included, the deepest path
    /// into a stacked backing device (see "The stack" in `docs/design.md`).
    #[inline(never)]
    fn fallocate(io: &IoConfig, rq: &Request, mode: i32) -> Result {
        let disk = rq.disk();
        // As C, the queue's limit decides, not the file (which
        // `LOOP_CHANGE_FD` may have changed).
        if disk.max_discard_sectors() == 0 {
            return Err(EOPNOTSUPP);
        }
        let pos = rq.pos() + io.offset;
        match io
            .file
            .fallocate(mode | falloc::KEEP_SIZE, pos, rq.bytes().into())
        {
            Err(e) if e == EOPNOTSUPP => {
                Self::clear_limits(disk, mode);
                Err(e)
            }
            Err(e) if e != EINVAL => Err(EIO),
            other => other,
        }
    }

    /// The limits were set in the hope that `fallocate` supports `mode`:
    /// it does not, so no more requests that need it, as
    /// `loop_clear_limits()`. Done before the request ends, so that the
    /// block layer sees the limit gone when it sees the error
    /// (`blkdev_issue_zeroout()` then zeroes by writing, as on C).
    ///
    /// Like C, the queue is not frozen: this request is in flight. Unlike
    /// C, the limits lock is only tried. Whoever holds it may be freezing
    /// the queue, and so waiting for this request (`LOOP_SET_BLOCK_SIZE`
    /// does); waiting for it here would deadlock. The next refusal tries
    /// again.
    #[inline(never)]
    fn clear_limits(disk: &DiskRef, mode: i32) {
        let Some(mut lim) = disk.try_start_limits_update() else {
            return;
        };
        if mode & falloc::ZERO_RANGE != 0 {
            lim.clear_write_zeroes();
        }
        if mode & falloc::PUNCH_HOLE != 0 {
            lim.clear_discard();
        }
        // Less than valid limits is valid.
        let _ = lim.commit();
    }
}
