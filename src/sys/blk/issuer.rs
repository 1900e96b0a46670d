// SPDX-License-Identifier: GPL-2.0

//! The cgroup that issued a request, and its I/O charged to it from a
//! worker, as `loop_handle_cmd()` does.
//!
//! C headers: [`include/linux/blk-cgroup.h`](srctree/include/linux/blk-cgroup.h),
//! [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h).

use super::Request;
use core::{marker::PhantomData, num::NonZeroU64};
use kernel::bindings;

// The C helpers of `src/helpers/`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_issuer_enter(rq: *mut bindings::request, saved: *mut IssuerSaved);
    fn rloop_issuer_exit(saved: *mut IssuerSaved);
    fn rloop_rq_issued_by_current(rq: *mut bindings::request) -> bool;
    fn rloop_rq_cgroup_id(rq: *mut bindings::request) -> u64;
}

/// What [`IssuerScope`] changed (`struct rloop_issuer_saved`).
#[repr(C)]
struct IssuerSaved {
    /// The issuer's memory cgroup, with a reference of its own, if set as
    /// the task's active one.
    memcg_css: *mut bindings::cgroup_subsys_state,
    /// The active memory cgroup before.
    old_memcg: *mut bindings::mem_cgroup,
    /// Whether the task (a kernel thread) was associated with the issuer's
    /// blkcg.
    blkcg: bool,
}

/// A scope in which a worker's I/O for a request counts against the cgroup
/// that issued the request, the blkcg of its first bio, as in C: the bios
/// the worker submits go to that blkcg (`kthread_associate_blkcg`), so its
/// `io.max` and `io.weight` hold and its `io.stat` counts them, and the
/// worker's allocations (the backing file's page cache) to its memory
/// cgroup (`set_active_memcg`), so its `memory.max` holds. Nothing changes
/// for a request of the root cgroup, which is a worker's own.
///
/// # Invariants
///
/// `saved` holds what `rloop_issuer_enter` changed on the task that made
/// the scope, which is the one that drops it (the guard is not `Send`).
pub struct IssuerScope {
    saved: IssuerSaved,
    _not_send: PhantomData<*mut ()>,
}

impl IssuerScope {
    /// Charges the current task's I/O to the issuer of `rq` until the guard
    /// goes. For a worker: a kernel thread, with no association of its own
    /// to restore (an association ends with the scope).
    pub fn enter(rq: &Request) -> Self {
        let mut saved = IssuerSaved {
            memcg_css: core::ptr::null_mut(),
            old_memcg: core::ptr::null_mut(),
            blkcg: false,
        };
        // SAFETY: The request is live (type invariant), so its bios are,
        // and the blkcg each holds; the helper only changes the current
        // task's association and active memory cgroup, and records what it
        // changed in `saved`, with a reference to the memory cgroup it set.
        unsafe { rloop_issuer_enter(rq.raw(), &mut saved) };
        // INVARIANT: `saved` is what was changed, on this task.
        Self {
            saved,
            _not_send: PhantomData,
        }
    }
}

impl Drop for IssuerScope {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, `saved` is what `enter` changed on
        // this task: the helper restores the active memory cgroup, drops
        // the reference taken, and ends the association.
        unsafe { rloop_issuer_exit(&mut self.saved) };
    }
}

impl Request {
    /// Whether the bios the current task submits would count against the
    /// cgroup that issued this request: a task of that very cgroup, or a
    /// kernel thread and a request of the root cgroup. A kernel thread may
    /// submit for another cgroup (a filesystem's writeback, a worker of a
    /// loop device above this one) with an association that a module
    /// cannot read, so it is never taken as the issuer of another cgroup's
    /// request.
    pub fn issued_by_current(&self) -> bool {
        // SAFETY: The request is live (type invariant); the helper reads
        // its first bio's blkcg and the current task's, under RCU.
        unsafe { rloop_rq_issued_by_current(self.raw()) }
    }

    /// The id of the cgroup that issued this request, the blkcg of its
    /// first bio (`cgroup_id()`), or `None` for the root cgroup (and
    /// without cgroups). An id is never reused while the system runs.
    pub fn issuer_cgroup(&self) -> Option<NonZeroU64> {
        // SAFETY: The request is live (type invariant), so its bios are,
        // and the blkcg each holds, with its cgroup.
        NonZeroU64::new(unsafe { rloop_rq_cgroup_id(self.raw()) })
    }
}
