// SPDX-License-Identifier: GPL-2.0

//! The current task's state around I/O to a backing file: the worker's
//! flags, the scope of a submission from `queue_rq` on the submitter's own
//! task, and a block plug.
//!
//! C headers: [`include/linux/sched/mm.h`](srctree/include/linux/sched/mm.h),
//! [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h).

use kernel::bindings;

#[allow(improper_ctypes)]
extern "C" {
    fn rloop_worker_enter() -> u32;
    fn rloop_worker_exit(old: u32);
    fn rloop_cond_resched();
    fn rloop_inline_submit_enter(saved: *mut InlineSaved) -> u32;
    fn rloop_inline_submit_exit(flags: u32, saved: *mut InlineSaved);
    fn rloop_may_submit_inline() -> bool;
    fn rloop_stack_left() -> usize;
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

/// Gives the CPU to another task if one is due to run (`cond_resched()`),
/// as the C worker does between commands: a worker that keeps finding
/// requests would otherwise hold its CPU for as long as they keep coming,
/// where the preemption model does not preempt kernel code. For process
/// context with no spinlock held; elsewhere it does not schedule, and the
/// debug kernel's sleep checks report the call.
pub fn cond_resched() {
    // SAFETY: `cond_resched()` takes no arguments and is sound in any
    // context: it schedules only when preemption is allowed there.
    unsafe { rloop_cond_resched() };
}

/// The scope of a submission to the backing file from `queue_rq`, on the
/// submitter's own task:
///
/// - its allocations do no I/O (`memalloc_noio_save`), since reclaim could
///   otherwise write back to the very device it is submitting to;
/// - its block plug (`current->plug`) is set aside. `queue_rq` may be
///   running from a flush of that plug, while blk-mq takes requests off
///   its list; a request of the backing device added to it then would be
///   lost or corrupt the list. Without a plug the backing filesystem uses
///   its own, which it flushes before it returns. The set-aside plug's
///   cached timestamp is dropped first (`PF_BLOCK_TS`): the scheduler
///   would clear it through the then null `current->plug`;
/// - its bio list (`current->bio_list`) is set aside. `queue_rq` may be
///   running inside `submit_bio` (a direct issue), where bios submitted
///   meanwhile wait on that list until the outer call returns; a backing
///   filesystem that waits for its own bio before returning (ext4 reading
///   an extent block) would wait forever. Without the list its bios are
///   issued at once, one level of recursion deep: [`may_submit_inline`]
///   refuses a submission inside another.
///
/// The guard is not `Send`: it restores the task it was made on.
pub struct InlineSubmitScope {
    noio: u32,
    saved: InlineSaved,
}

/// What [`InlineSubmitScope`] set aside (`struct rloop_inline_saved`).
#[repr(C)]
struct InlineSaved {
    plug: *mut bindings::blk_plug,
    bio_list: *mut bindings::bio_list,
}

impl InlineSubmitScope {
    /// Enters the scope until the guard goes.
    pub fn enter() -> Self {
        let mut saved = InlineSaved {
            plug: core::ptr::null_mut(),
            bio_list: core::ptr::null_mut(),
        };
        // SAFETY: Only changes the current task's own flags, plug and bio
        // list pointers; `saved` is written with the ones that were set.
        let noio = unsafe { rloop_inline_submit_enter(&mut saved) };
        Self { noio, saved }
    }
}

impl Drop for InlineSubmitScope {
    fn drop(&mut self) {
        // SAFETY: Restores what `enter` saved, on the same task (the guard
        // is not `Send`). The plug and the bio list are the caller's, still
        // on its stack: a plug lives from `blk_start_plug` to
        // `blk_finish_plug` in one function, and a bio list for the whole
        // of `__submit_bio_noacct*`, both of which called into us.
        unsafe { rloop_inline_submit_exit(self.noio, &mut self.saved) };
    }
}

/// Whether the current task may call into another filesystem: it is not
/// inside a filesystem transaction (whose handle in `journal_info` the
/// backing filesystem would take for its own), not in memory reclaim, and
/// not in a NOIO section, which an [`InlineSubmitScope`] is (so that
/// submissions through stacked loop devices do not nest).
pub fn may_submit_inline() -> bool {
    // SAFETY: Only reads the current task's own fields.
    unsafe { rloop_may_submit_inline() }
}

/// The bytes of the current task's kernel stack left below this call's
/// frame (the stack grows down), or 0 when it runs on another stack (an
/// interrupt's). What a call into another filesystem may still use before
/// it overflows the stack into its guard page.
pub fn stack_left() -> usize {
    // SAFETY: Only reads the stack pointer and the current task's stack
    // base, which does not change while the task runs.
    unsafe { rloop_stack_left() }
}

/// Runs `f` under a block plug of the current task (`blk_start_plug`):
/// the bios and requests that `f` submits are held on the plug and go to
/// their queues together when it ends, or when the task sleeps first (the
/// scheduler flushes a sleeping task's plug), so a batch of submissions
/// reaches the backing device as one. A plug already in place stays the
/// one in use.
pub fn plugged<R>(f: impl FnOnce() -> R) -> R {
    let mut plug = core::mem::MaybeUninit::<bindings::blk_plug>::uninit();
    // SAFETY: `blk_start_plug` initialises the plug and, if the task has
    // none, points `current->plug` at it. It stays on this frame, not
    // moved, until `blk_finish_plug` below, which flushes it and resets
    // `current->plug` if it was the one set; `f` runs on the same task
    // and returns before.
    unsafe { bindings::blk_start_plug(plug.as_mut_ptr()) };
    let result = f();
    // SAFETY: As above; the plug was initialised by `blk_start_plug`.
    unsafe { bindings::blk_finish_plug(plug.as_mut_ptr()) };
    result
}
