// SPDX-License-Identifier: GPL-2.0

//! The wrapper layer: thin safe types over `kernel::bindings` and the C
//! helpers in `helpers.c`, for what the kernel crate does not offer yet.
//!
//! Every `unsafe` of the module lives below this directory.

pub mod blk;
pub mod file;
pub mod misc;

use core::marker::PhantomData;
use kernel::{
    bindings,
    transmute::{AsBytes, FromBytes},
    ModuleMetadata,
};

use crate::uapi::{LoopConfig, LoopInfo, LoopInfo64};

// SAFETY: `repr(C)` structs of integers and byte arrays with no implicit
// padding (the layouts are checked by the host tests): every bit pattern is
// valid and every byte is initialised.
unsafe impl FromBytes for LoopInfo {}
// SAFETY: As above.
unsafe impl AsBytes for LoopInfo {}
// SAFETY: As above.
unsafe impl FromBytes for LoopInfo64 {}
// SAFETY: As above.
unsafe impl AsBytes for LoopInfo64 {}
// SAFETY: As above.
unsafe impl FromBytes for LoopConfig {}

/// A reference on module `M`, held by each bound loop device as in C, so
/// that the module cannot go while a backing file is attached.
pub struct ModuleRef<M: ModuleMetadata>(PhantomData<fn() -> M>);

impl<M: ModuleMetadata> ModuleRef<M> {
    /// Takes a reference. The caller runs code of `M` that got here through
    /// an open file or device, so the module is live and not going.
    pub fn get() -> Self {
        // SAFETY: The module is live (see above), so `__module_get` is valid.
        unsafe { bindings::__module_get(M::THIS_MODULE.as_ptr()) };
        Self(PhantomData)
    }
}

impl<M: ModuleMetadata> Drop for ModuleRef<M> {
    fn drop(&mut self) {
        // SAFETY: Drops the reference `get` took.
        unsafe { bindings::module_put(M::THIS_MODULE.as_ptr()) };
    }
}

/// Whether the caller has `CAP_SYS_ADMIN`.
pub fn capable_sys_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}

#[allow(improper_ctypes)]
extern "C" {
    fn rloop_worker_enter() -> u32;
    fn rloop_worker_exit(old: u32);
    fn rloop_noio_save() -> u32;
    fn rloop_noio_restore(flags: u32);
    fn rloop_may_submit_inline() -> bool;
}

/// A scope in which the current task runs as the loop worker does in C
/// (`loop_process_work()`): its allocations do no I/O (`PF_MEMALLOC_NOIO`),
/// and its buffered writes to the backing file are throttled only against
/// that file's device (`PF_LOCAL_THROTTLE`). Without the latter, the worker
/// that cleans the dirty pages of a filesystem on the loop device waits in
/// `balance_dirty_pages` for those very pages.
pub struct WorkerScope(u32);

impl WorkerScope {
    /// Enters the scope until the guard goes.
    pub fn enter() -> Self {
        // SAFETY: Only changes the current task's own flags.
        Self(unsafe { rloop_worker_enter() })
    }
}

impl Drop for WorkerScope {
    fn drop(&mut self) {
        // SAFETY: Restores what `enter` saved, on the same task.
        unsafe { rloop_worker_exit(self.0) };
    }
}

/// A scope in which the current task's allocations do no I/O
/// (`memalloc_noio_save`): what a submitter that calls into the backing
/// file's filesystem from `queue_rq` needs, since reclaim could otherwise
/// write back to the very device it is submitting to.
pub struct NoIoScope(u32);

impl NoIoScope {
    /// Enters the scope until the guard goes.
    pub fn enter() -> Self {
        // SAFETY: Only changes the current task's own flags.
        Self(unsafe { rloop_noio_save() })
    }
}

impl Drop for NoIoScope {
    fn drop(&mut self) {
        // SAFETY: Restores what `enter` saved, on the same task.
        unsafe { rloop_noio_restore(self.0) };
    }
}

/// Whether the current task may call into another filesystem: it is not
/// inside a filesystem transaction (whose handle in `journal_info` the
/// backing filesystem would take for its own) and not in memory reclaim.
pub fn may_submit_inline() -> bool {
    // SAFETY: Only reads the current task's own fields.
    unsafe { rloop_may_submit_inline() }
}
