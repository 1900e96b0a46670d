// SPDX-License-Identifier: GPL-2.0

//! A workqueue of the module's own.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h).

use core::ptr::NonNull;
use kernel::{bindings, prelude::*};

// The C helpers of `helpers.c`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_alloc_io_workqueue() -> *mut bindings::workqueue_struct;
}

/// A workqueue of the module's own for [`Request::queue_work`]: unbound,
/// with a rescuer thread (`WQ_MEM_RECLAIM`), since requests of a loop
/// device are in the writeback path of what sits on it. Dropping it waits
/// for every work item on it (`destroy_workqueue`): the module's code is
/// not left running after it.
///
/// # Invariants
///
/// `ptr` is a workqueue from `alloc_workqueue`, not destroyed.
pub struct IoWorkqueue {
    ptr: NonNull<bindings::workqueue_struct>,
}

// SAFETY: A workqueue is used and destroyed from any thread.
unsafe impl Send for IoWorkqueue {}
// SAFETY: `queue_work` is thread-safe.
unsafe impl Sync for IoWorkqueue {}

impl IoWorkqueue {
    pub(crate) fn as_raw(&self) -> *mut bindings::workqueue_struct {
        self.ptr.as_ptr()
    }

    /// Allocates the workqueue (`loop_io`).
    pub fn new() -> Result<Self> {
        // SAFETY: No preconditions.
        let ptr = unsafe { rloop_alloc_io_workqueue() };
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(ENOMEM)?,
        })
    }

    /// The workqueue, for the kernel crate's work items.
    pub fn queue(&self) -> &kernel::workqueue::Queue {
        // SAFETY: By the type invariant the workqueue is live, as long as
        // `self` is.
        unsafe { kernel::workqueue::Queue::from_raw(self.ptr.as_ptr()) }
    }

    /// Waits for every work item queued so far to have run
    /// (`flush_workqueue`). May sleep; not from a work item of this queue.
    pub fn flush(&self) {
        // SAFETY: By the type invariant the workqueue is live.
        unsafe { bindings::__flush_workqueue(self.ptr.as_ptr()) };
    }
}

impl Drop for IoWorkqueue {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the workqueue is live; it drains
        // first, and nothing queues on it any more: every holder is gone.
        unsafe { bindings::destroy_workqueue(self.ptr.as_ptr()) };
    }
}
