// SPDX-License-Identifier: GPL-2.0

//! A request handed to a worker as a work item of its own, in its command.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h).

use super::{cmd::Cmd, DiskDriver, Request};
use crate::sys::workqueue::IoWorkqueue;
use core::mem::ManuallyDrop;
use kernel::bindings;

// The C helpers of `src/helpers/`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_queue_rq_work(
        wq: *mut bindings::workqueue_struct,
        work: *mut bindings::work_struct,
        func: unsafe extern "C" fn(*mut bindings::work_struct),
    );
}

impl Request {
    /// Hands the request to a worker of `wq`, where the driver `T` gets it back
    /// in [`QueueOperations::run_queued`](super::QueueOperations::run_queued),
    /// in a context that may sleep. The work item is the request's own, in its
    /// command, so requests handed over run concurrently. May be called from
    /// any context.
    pub fn queue_work<T: DiskDriver>(self, wq: &IoWorkqueue) {
        let rq = ManuallyDrop::new(self);
        // SAFETY: The request is live and owned by the driver; its command
        // is not in use by a direct I/O (which gives the request back only
        // when it is over), so its work item is free. The work function is
        // for `T`, whose disk the request belongs to; the workqueue lives
        // until every work item on it is done (`IoWorkqueue`'s drop).
        unsafe {
            let cmd = Cmd::of(rq.raw());
            rloop_queue_rq_work(wq.as_raw(), &raw mut (*cmd).work, run_work::<T>);
        }
    }
}

/// The work function of a request handed to [`Request::queue_work`].
///
/// # Safety
///
/// Called by the workqueue for the `work` of the command of a request of a
/// disk made by [`Disk::new`] for `T`, queued by `queue_work`.
unsafe extern "C" fn run_work<T: DiskDriver>(work: *mut bindings::work_struct) {
    // SAFETY: `work` is in a command, which is the PDU of a request that
    // `queue_work` gave up to this work item, which runs once per queueing.
    let (this, rq) = unsafe {
        let cmd: *mut Cmd = kernel::container_of!(work, Cmd, work);
        Request::take_back::<T>(bindings::blk_mq_rq_from_pdu(cmd.cast()))
    };
    T::run_queued(this, rq);
}
