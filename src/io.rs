// SPDX-License-Identifier: GPL-2.0

//! A request's path, from `queue_rq` to its end. The files, in the order a
//! request meets them:
//!
//! 1. here, [`QueueOperations`] for [`LoopDevice`]: `queue_rq` takes the
//!    request, and the callbacks of the wrapper layer give it back when it
//!    moves on (a page ready, a `NOWAIT` fallback, a work item, a direct
//!    I/O done);
//! 2. `io/inline.rs`: what `queue_rq` submits itself, on the submitter's
//!    task: direct I/O with `IOCB_NOWAIT`, and small buffered reads from
//!    the page cache;
//! 3. `io/worker.rs`: the hand-off to a worker, a work item each or in
//!    batches;
//! 4. `io/handle.rs`: a request run against the backing file by a worker,
//!    as `do_req_filebacked()`;
//! 5. `io/complete.rs`: the end of a read or write, as `lo_complete_rq()`.

mod complete;
mod handle;
mod inline;
mod worker;

pub(crate) use worker::{Batch, CgroupWorker};

use kernel::{
    prelude::*,
    sync::{Arc, ArcBorrow},
};

use crate::device::{LoopDevice, Phase};
use crate::sys::{
    blk::{BlkStatus, QueueOperations, ReqOp, Request},
    task::WorkerScope,
};

impl QueueOperations for LoopDevice {
    fn direct_done(this: ArcBorrow<'_, Self>, rq: Request, result: Result<usize>, nowait: bool) {
        if nowait {
            this.stats.nowait_hit();
        }
        Self::finish_rw(rq, result);
    }

    fn nowait_fallback(this: ArcBorrow<'_, Self>, rq: Request) {
        this.stats.eagain_fallback();
        Self::to_worker(this, rq, false);
    }

    /// The worker path of the requests not batched (see
    /// [`LoopDevice::to_worker`]): each runs in its own work item, so
    /// buffered reads run concurrently, each blocking only itself, with no
    /// ordering between them (the block layer asks for none: a flush
    /// covers the writes completed before it, which it follows).
    fn run_queued(this: ArcBorrow<'_, Self>, rq: Request) {
        // `this` is borrowed from the request's queue, alive only while the
        // request is: once it ends, the device may go. The work item keeps
        // its own reference for what it does after.
        let this: Arc<Self> = this.into();
        let _worker = WorkerScope::enter();
        let io = this.current_io();
        this.run_worker(io.as_deref(), rq);
    }

    fn queue_rq(this: ArcBorrow<'_, Self>, rq: Request) {
        if this.phase() != Phase::Bound {
            // Not bound: fail at once, as `loop_queue_rq()` does.
            return rq.end(BlkStatus::io_error());
        }
        let io = this.current_io();
        // Bound, the device has its I/O configuration; the worker would
        // fail the request too if not.
        let Some(io) = io else {
            return rq.end(BlkStatus::io_error());
        };
        // A read-only device never writes its file, as `loop_handle_cmd()`:
        // the block core lets a write to a read-only disk through, with a
        // warning, and the file may be open read-only.
        if io.read_only && rq.op().writes() {
            return rq.end(BlkStatus::io_error());
        }
        if let Some(rq) = this.try_nowait(&io, rq) {
            let batch = match rq.op() {
                ReqOp::Read => io.direct,
                ReqOp::Write => io.direct || io.regular,
                _ => false,
            };
            Self::to_worker(this, rq, batch);
        }
    }
}
