// SPDX-License-Identifier: GPL-2.0

//! The hand-off to a worker: a work item of the request's own on the
//! device's workqueue, or the device's batching worker.

use core::sync::atomic::Ordering;
use kernel::{
    sync::{Arc, ArcBorrow},
    workqueue,
};

use crate::device::{IoConfig, LoopDevice};
use crate::sys::{
    blk::{BlkStatus, IssuerScope, ReqOp, Request},
    task::{self, WorkerScope},
};

impl LoopDevice {
    /// Hands `rq` to a worker. Any context.
    ///
    /// With `batch` it goes on `submit_list`, which one work item at a
    /// time takes in batches, in order, as the C driver's worker takes its
    /// list. `queue_rq` batches direct reads and writes, whose submission
    /// seldom blocks for long, and buffered writes to a regular file, which
    /// all take the file's `i_rwsem` exclusively and so gain nothing from
    /// running at once but contention. A work item each would also wake a
    /// worker thread each: on an unbound workqueue, every work item queued
    /// wakes an idle worker. The rest (buffered reads, flushes, discards)
    /// and `NOWAIT` fallbacks, which may well block, are each a work item
    /// of their own (`run_queued`), and run concurrently.
    pub(super) fn to_worker(this: ArcBorrow<'_, Self>, rq: Request, batch: bool) {
        if rq.op() == ReqOp::Write {
            this.worker_writes.fetch_add(1, Ordering::Relaxed);
        }
        if !batch {
            return rq.queue_work::<Self>(&this.wq);
        }
        // Both are full barriers (`llist_add` and the swap), and so are the
        // worker's swap and `take_all` when it disarms: either this sees
        // the worker still armed, and the worker then finds `rq`, or the
        // worker is disarmed and this queues it again.
        if this.submit_list.push(rq) && !this.submit_armed.swap(true, Ordering::SeqCst) {
            // Already pending is fine: a run queued by an adder while the
            // last run disarmed, which takes the list.
            let _ = this.wq.queue().enqueue(Arc::from(this));
        }
    }

    /// Runs a request handed to a worker, in a [`WorkerScope`], with
    /// the device's I/O configuration `io` (see [`LoopDevice::current_io`]),
    /// its I/O charged to the cgroup that issued it ([`IssuerScope`]).
    pub(super) fn run_worker(&self, io: Option<&IoConfig>, rq: Request) {
        let _running = self.stats.worker_io();
        let _issuer = IssuerScope::enter(&rq);
        if rq.op() == ReqOp::Write {
            self.worker_writes.fetch_sub(1, Ordering::Relaxed);
        }
        match io {
            Some(io) => Self::handle(io, rq),
            None => rq.end(BlkStatus::io_error()),
        }
    }
}

kernel::impl_has_work! {
    impl HasWork<Self> for LoopDevice { self.submit_work }
}

impl workqueue::WorkItem for LoopDevice {
    type Pointer = Arc<Self>;

    /// The batching worker of `submit_list`: takes the list until it finds
    /// it empty, then disarms (`submit_armed`) and looks once more. Whoever
    /// adds to an empty list while it is disarmed queues this again, so no
    /// request is left behind, and one run at a time takes the list.
    ///
    /// Each batch of direct I/O is submitted under one block plug, so that
    /// it reaches the backing device together rather than a bio at a time.
    /// Between requests the run yields its CPU to any task due to run
    /// (`cond_resched`), as `loop_process_work()` does: under steady load
    /// it may never find the list empty.
    fn run(this: Arc<Self>) {
        let _worker = WorkerScope::enter();
        this.stats.worker_batch();
        loop {
            let mut batch = this.submit_list.take_all().peekable();
            if batch.peek().is_none() {
                this.submit_armed.swap(false, Ordering::SeqCst);
                batch = this.submit_list.take_all().peekable();
                if batch.peek().is_none() {
                    return;
                }
                // Added while disarmed: this run takes the batch. If its
                // adder queued a run too, that one finds the list empty.
                this.submit_armed.swap(true, Ordering::SeqCst);
            }
            let io = this.current_io();
            let run = || {
                for rq in batch {
                    this.run_worker(io.as_deref(), rq);
                    task::cond_resched();
                }
            };
            // The direct I/O of a batch goes to the backing device together.
            // A buffered write submits no bio of its own, so it gains nothing
            // from the plug.
            if io.as_ref().is_some_and(|io| io.direct) {
                task::plugged(run);
            } else {
                run();
            }
        }
    }
}
