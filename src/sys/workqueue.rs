// SPDX-License-Identifier: GPL-2.0

//! A workqueue of the driver's own, made by `alloc_workqueue`.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h).

use core::ptr::NonNull;
use kernel::{bindings, prelude::*, str::CStr};

// The C helpers of `src/helpers/`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_alloc_workqueue(name: *const c_char, flags: c_uint)
        -> *mut bindings::workqueue_struct;
}

/// Flags of [`IoWorkqueue::new`] (`enum wq_flags`).
pub mod flags {
    use kernel::bindings;

    /// Its workers are not bound to a CPU (`WQ_UNBOUND`).
    pub const UNBOUND: u32 = bindings::wq_flags_WQ_UNBOUND;
    /// Frozen with user space for suspend and hibernation: its work items
    /// wait until the system thaws (`WQ_FREEZABLE`).
    pub const FREEZABLE: u32 = bindings::wq_flags_WQ_FREEZABLE;
    /// It has a rescuer thread of its own, which runs its work items when
    /// no worker can be created for want of memory (`WQ_MEM_RECLAIM`): for
    /// work that memory reclaim may wait for.
    pub const MEM_RECLAIM: u32 = bindings::wq_flags_WQ_MEM_RECLAIM;
}

/// A workqueue for [`Request::queue_work`](super::blk::Request::queue_work)
/// and the kernel crate's work items. Dropping it waits for every work item
/// on it (`destroy_workqueue`): its users' code is not left running after
/// it. So it must not be dropped from one of its own work items, which
/// would wait for itself.
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

    /// Allocates a workqueue called `name` (at most 31 bytes are kept),
    /// with [`flags`]. May sleep.
    pub fn new(name: &CStr, flags: u32) -> Result<Self> {
        // SAFETY: `name` is a NUL-terminated string, copied by
        // `alloc_workqueue` (through a "%s" format).
        let ptr = unsafe { rloop_alloc_workqueue(name.as_char_ptr(), flags) };
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

    /// Waits for every work item queued so far to have run and returned
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
