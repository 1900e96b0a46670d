// SPDX-License-Identifier: GPL-2.0

//! The hand-off to a worker: a work item of the request's own on the
//! device's workqueue, or a batching worker, one for each cgroup that
//! issues requests to the device, as C's `loop_worker` tree.

use core::{
    num::NonZeroU64,
    sync::atomic::{AtomicBool, Ordering},
};
use kernel::{
    new_work,
    prelude::*,
    sync::{Arc, ArcBorrow},
    workqueue::{self, Work},
};

use crate::device::{IoConfig, LoopDevice};
use crate::sys::{
    blk::{BlkStatus, IssuerScope, ReqOp, Request, RequestBatch, RequestList},
    task::{self, WorkerScope},
};

/// Requests that one run of a work item at a time takes in batches, in the
/// order they came: the root cgroup's, the device's own
/// (`LoopDevice::submit_work`), or another cgroup's ([`CgroupWorker`]).
///
/// Whoever adds a request while the batch is disarmed queues its work item
/// ([`Batch::push`]). A run takes the list until it finds it empty, then
/// disarms and looks once more ([`Batch::next`]), so no request is left
/// behind and one run at a time takes the list.
pub(crate) struct Batch {
    list: RequestList,
    /// Set while the work item is queued or running and will look at
    /// `list` again before it returns: requests added meanwhile need no
    /// queueing. Queueing a running work item again would wake an idle
    /// worker thread of the unbound workqueue only for it to hand the item
    /// back to the thread running it: two context switches for nothing.
    armed: AtomicBool,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Self {
            list: RequestList::new(),
            armed: AtomicBool::new(false),
        }
    }

    /// Adds `rq`; returns whether the caller must queue the work item.
    /// Any context.
    fn push(&self, rq: Request) -> bool {
        // Both are full barriers (`llist_add` and the swap), and so are the
        // run's swap and `take_all` when it disarms: either this sees the
        // run still armed, and the run then finds `rq`, or the run is
        // disarmed and this queues it again. Already pending is fine then:
        // a run queued by an adder while the last run disarmed, which takes
        // the list.
        self.list.push(rq) && !self.armed.swap(true, Ordering::SeqCst)
    }

    /// The next batch for a run, or `None` once the list was empty and
    /// the batch is disarmed: the run must then return.
    fn next(&self) -> Option<RequestBatch> {
        let batch = self.list.take_all();
        if !batch.is_empty() {
            return Some(batch);
        }
        self.armed.swap(false, Ordering::SeqCst);
        let batch = self.list.take_all();
        if batch.is_empty() {
            return None;
        }
        // Added while disarmed: this run takes the batch. If its adder
        // queued a run too, that one finds the list empty.
        self.armed.swap(true, Ordering::SeqCst);
        Some(batch)
    }

    fn is_armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }
}

/// The cgroups' batching workers that a device keeps when they are idle:
/// a new one first drops the idle ones beyond this many.
const IDLE_CGROUP_WORKERS: usize = 16;

/// The batching worker of one cgroup's requests on one device, as C's
/// `struct loop_worker`: its own run on the device's workqueue, so that a
/// request of one cgroup does not wait behind another cgroup's, whose
/// submission may sleep in the backing device's I/O controller
/// (`io.latency`, `io.cost`) or in its memory cgroup's reclaim. The root
/// cgroup's requests are the device's own batch.
///
/// Made for the first request of a cgroup for the batch, and kept in the
/// device's `cgroup_workers` when idle, as C keeps one for a minute: made
/// at each burst of requests instead, it cost a cgroup's direct reads
/// through the worker at depth 1 about 18% of their rate in a debug
/// kernel (`docs/design.md`, "Cgroup charging"). It holds the cgroup
/// only by its id, so a cgroup that has gone leaves no more than an idle
/// worker behind, which a new one drops ([`IDLE_CGROUP_WORKERS`]). It
/// holds the device, which drops its workers at the detach and at the
/// removal ([`LoopDevice::drop_cgroup_workers`]).
#[pin_data]
pub(crate) struct CgroupWorker {
    device: Arc<LoopDevice>,
    /// The cgroup's id.
    cgroup: NonZeroU64,
    batch: Batch,
    #[pin]
    work: Work<CgroupWorker>,
}

kernel::impl_has_work! {
    impl HasWork<Self> for CgroupWorker { self.work }
}

impl workqueue::WorkItem for CgroupWorker {
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        this.device.run_batches(&this.batch);
    }
}

impl LoopDevice {
    /// Hands `rq` to a worker. Any context.
    ///
    /// With `batch` it goes to the batching worker of the cgroup that
    /// issued it, which takes its requests in batches, in order, as the C
    /// driver's worker takes its list. `queue_rq` batches direct reads and
    /// writes, whose submission seldom blocks for long, and buffered writes
    /// to a regular file, which all take the file's `i_rwsem` exclusively
    /// and so gain nothing from running at once but contention. A work
    /// item each would also wake a worker thread each: on an unbound
    /// workqueue, every work item queued wakes an idle worker. The rest
    /// (buffered reads, flushes, discards) and `NOWAIT` fallbacks, which
    /// may well block, are each a work item of their own (`run_queued`),
    /// and run concurrently.
    pub(super) fn to_worker(this: ArcBorrow<'_, Self>, rq: Request, batch: bool) {
        if rq.op() == ReqOp::Write {
            this.worker_writes.fetch_add(1, Ordering::Relaxed);
        }
        if !batch {
            return rq.queue_work::<Self>(&this.wq);
        }
        let worker = rq
            .issuer_cgroup()
            .and_then(|id| Self::cgroup_worker(this, id));
        match worker {
            Some(worker) => {
                if worker.batch.push(rq) {
                    let _ = this.wq.queue().enqueue(worker);
                }
            }
            None => {
                if this.batch.push(rq) {
                    let _ = this.wq.queue().enqueue(Arc::from(this));
                }
            }
        }
    }

    /// The batching worker of cgroup `id`, made if it has none. `None` if
    /// one cannot be made without sleeping: its requests then go to the
    /// root cgroup's batch, as in C, still charged to their cgroup.
    fn cgroup_worker(this: ArcBorrow<'_, Self>, id: NonZeroU64) -> Option<Arc<CgroupWorker>> {
        let mut workers = this.cgroup_workers.lock();
        if let Some(worker) = workers.iter().find(|w| w.cgroup == id) {
            return Some(worker.clone());
        }
        if workers.len() >= IDLE_CGROUP_WORKERS {
            // The idle ones go: neither queued nor running (a run that has
            // just disarmed holds its own reference).
            let before = workers.len();
            workers.retain(|w| w.batch.is_armed());
            this.stats.cgroup_workers_dropped(before - workers.len());
        }
        let flags = GFP_NOWAIT | __GFP_NOWARN;
        let worker = Arc::pin_init(
            try_pin_init!(CgroupWorker {
                device: this.into(),
                cgroup: id,
                batch: Batch::new(),
                work <- new_work!("CgroupWorker::work"),
            }),
            flags,
        )
        .ok()?;
        workers.push(worker.clone(), flags).ok()?;
        this.stats.cgroup_worker_made();
        Some(worker)
    }

    /// Drops the device's references to the cgroups' workers, and so
    /// theirs to the device, when no request is in flight: at the detach,
    /// and at the removal once the workqueue is flushed. A run that has not
    /// returned yet holds its worker until it does.
    pub(crate) fn drop_cgroup_workers(&self) {
        let workers = core::mem::take(&mut *self.cgroup_workers.lock());
        self.stats.cgroup_workers_dropped(workers.len());
    }

    /// Runs `batch` until it is empty and disarmed, in a [`WorkerScope`].
    ///
    /// Each batch of direct I/O is submitted under one block plug, so that
    /// it reaches the backing device together rather than a bio at a time.
    /// Between requests the run yields its CPU to any task due to run
    /// (`cond_resched`), as `loop_process_work()` does: under steady load
    /// it may never find the list empty.
    fn run_batches(&self, batch: &Batch) {
        let _worker = WorkerScope::enter();
        self.stats.worker_batch();
        while let Some(requests) = batch.next() {
            let io = self.current_io();
            let run = || {
                for rq in requests {
                    self.run_worker(io.as_deref(), rq);
                    task::cond_resched();
                }
            };
            // A buffered write submits no bio of its own, so it gains
            // nothing from the plug.
            if io.as_ref().is_some_and(|io| io.direct) {
                task::plugged(run);
            } else {
                run();
            }
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

    /// The batching worker of the root cgroup's requests.
    fn run(this: Arc<Self>) {
        this.run_batches(&this.batch);
    }
}
