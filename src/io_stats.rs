// SPDX-License-Identifier: GPL-2.0

//! The per-device counters of the I/O paths and the fault-injection knob
//! of the `NOWAIT` path, in debugfs under `loop/loopN/`:
//!
//! - `nowait_hits`: direct I/Os submitted from `queue_rq` with
//!   `IOCB_NOWAIT` that did the whole request;
//! - `eagain_fallbacks`: such submissions that did not (`EAGAIN`, mostly)
//!   and went to the worker;
//! - `cached_reads`: buffered reads done whole from `queue_rq`, from the
//!   backing file's page cache;
//! - `cached_misses`: buffered reads tried from `queue_rq` that the page
//!   cache did not hold whole, up to date, and that went to the worker;
//! - `atime_deferred`: buffered reads not tried from `queue_rq` because
//!   a read would update the backing file's access time (after a write,
//!   with `relatime`), which the worker does;
//! - `worker_ios`: requests run by the worker, whatever the reason;
//! - `worker_batches`: runs of the batching worker, which takes the
//!   direct reads and writes and the buffered writes handed to the worker
//!   (the rest run one by one);
//! - `cgroup_workers_made`: batching workers made for a cgroup other than
//!   the root, one for each cgroup (again after an idle one was dropped);
//! - `cgroup_workers`: those that the device holds now;
//! - `worker_peak` (read-write, write 0 to reset): the most worker items
//!   that ran at the same time, which shows the buffered path's
//!   concurrency;
//! - `nowait_inflight`: `NOWAIT` submissions not yet done or given back;
//! - `nowait_depth` (read-write, from the `nowait_depth` module
//!   parameter; also the device's `loop/nowait_depth` in sysfs): with N > 0, `NOWAIT` is tried only while the request's
//!   hardware queue holds at most N requests, itself included, and at
//!   most N `NOWAIT` submissions are in flight; the other requests go to
//!   the worker, which runs on another CPU, in parallel with the
//!   submitter. After a request finds the queue over N + 1, the next 16
//!   that find it idle go to the worker too (the busy hold), so that a
//!   deep queue that empties for a moment stays with the worker;
//! - `busy_holds`: how many times a request found the queue over
//!   `nowait_depth` + 1 and so started the busy hold;
//! - `inline_stack_min` (read-write, bytes): a submission from
//!   `queue_rq` is made only while at least this much of the submitter's
//!   kernel stack is left below `queue_rq`'s frame; from
//!   [`INLINE_STACK_MIN`] (`docs/design.md`, "Stack");
//! - `stack_deferred`: requests that went to the worker because the
//!   submitter's stack had less than `inline_stack_min` left;
//! - `fail_nowait_every` (read-write): with N > 0, every N-th `NOWAIT`
//!   submission fails with `EAGAIN`, in turn at once (the backing file is
//!   not called) and at completion (the I/O is done and then dropped).

use kernel::{
    debugfs::{Dir, Scope},
    prelude::*,
    str::CStr,
    sync::atomic::{Atomic, Relaxed},
};

use crate::sys::blk::DirectMode;

/// The counters and the knob; see the module documentation.
pub(crate) struct IoStats {
    nowait_hits: Atomic<u64>,
    eagain_fallbacks: Atomic<u64>,
    worker_ios: Atomic<u64>,
    cached_reads: Atomic<u64>,
    cached_misses: Atomic<u64>,
    atime_deferred: Atomic<u64>,
    worker_batches: Atomic<u64>,
    cgroup_workers_made: Atomic<u64>,
    cgroup_workers: Atomic<u64>,
    /// Worker items running now.
    worker_running: Atomic<u64>,
    worker_peak: Atomic<u64>,
    nowait_inflight: Atomic<u32>,
    nowait_depth: Atomic<u32>,
    /// Requests still to see an idle queue before `NOWAIT` is tried again,
    /// after one saw a busy queue (see [`IoStats::nowait_slot`]).
    busy_hold: Atomic<u32>,
    busy_holds: Atomic<u64>,
    inline_stack_min: Atomic<u32>,
    stack_deferred: Atomic<u64>,
    fail_nowait_every: Atomic<u32>,
    /// `NOWAIT` submissions, counted to pick the ones that fail.
    nowait_tries: Atomic<u64>,
}

impl IoStats {
    /// The counters at zero and no fault, as `name` under `root`, with
    /// `nowait_depth` as the limit of [`IoStats::nowait_slot`] (0: none);
    /// the files go with the returned scope.
    pub(crate) fn new<'a>(
        root: &'a Dir,
        name: &'a CStr,
        nowait_depth: u32,
    ) -> impl PinInit<Scope<Self>> + 'a {
        root.scope(
            Self {
                nowait_hits: Atomic::new(0),
                eagain_fallbacks: Atomic::new(0),
                worker_ios: Atomic::new(0),
                cached_reads: Atomic::new(0),
                cached_misses: Atomic::new(0),
                atime_deferred: Atomic::new(0),
                worker_batches: Atomic::new(0),
                cgroup_workers_made: Atomic::new(0),
                cgroup_workers: Atomic::new(0),
                worker_running: Atomic::new(0),
                worker_peak: Atomic::new(0),
                nowait_inflight: Atomic::new(0),
                nowait_depth: Atomic::new(nowait_depth),
                busy_hold: Atomic::new(0),
                busy_holds: Atomic::new(0),
                inline_stack_min: Atomic::new(INLINE_STACK_MIN),
                stack_deferred: Atomic::new(0),
                fail_nowait_every: Atomic::new(0),
                nowait_tries: Atomic::new(0),
            },
            name,
            |s, dir| {
                dir.read_only_file(c"nowait_hits", &s.nowait_hits);
                dir.read_only_file(c"eagain_fallbacks", &s.eagain_fallbacks);
                dir.read_only_file(c"worker_ios", &s.worker_ios);
                dir.read_only_file(c"cached_reads", &s.cached_reads);
                dir.read_only_file(c"cached_misses", &s.cached_misses);
                dir.read_only_file(c"atime_deferred", &s.atime_deferred);
                dir.read_only_file(c"worker_batches", &s.worker_batches);
                dir.read_only_file(c"cgroup_workers_made", &s.cgroup_workers_made);
                dir.read_only_file(c"cgroup_workers", &s.cgroup_workers);
                dir.read_write_file(c"worker_peak", &s.worker_peak);
                dir.read_only_file(c"nowait_inflight", &s.nowait_inflight);
                dir.read_write_file(c"nowait_depth", &s.nowait_depth);
                dir.read_only_file(c"busy_holds", &s.busy_holds);
                dir.read_write_file(c"inline_stack_min", &s.inline_stack_min);
                dir.read_only_file(c"stack_deferred", &s.stack_deferred);
                dir.read_write_file(c"fail_nowait_every", &s.fail_nowait_every);
            },
        )
    }

    /// The `nowait_depth` setting (see the module documentation).
    pub(crate) fn nowait_depth(&self) -> u32 {
        self.nowait_depth.load(Relaxed)
    }

    /// Sets `nowait_depth`; requests already past the check keep the old
    /// one.
    pub(crate) fn set_nowait_depth(&self, depth: u32) {
        self.nowait_depth.store(depth, Relaxed);
    }

    /// How the next `NOWAIT` submission goes, with the fault knob applied.
    pub(crate) fn nowait_mode(&self) -> DirectMode {
        let every = u64::from(self.fail_nowait_every.load(Relaxed));
        if every == 0 {
            return DirectMode::NoWait;
        }
        nowait_mode_for(self.nowait_tries.fetch_add(1, Relaxed), every)
    }

    /// Takes one of the `nowait_depth` places of a `NOWAIT` submission, or
    /// gives `None` if all are taken, or if the hardware queue holds more
    /// than `nowait_depth` requests (`queue_busy`, the one to submit
    /// included): a deep queue is better spread over the CPUs by the
    /// worker than submitted one request after another from the
    /// submitter's; or, after a request found the queue over
    /// `nowait_depth` + 1, for the next [`BUSY_HOLD`] requests (the busy
    /// hold). The place is given back by
    /// [`IoStats::nowait_hit`], [`IoStats::eagain_fallback`] or by dropping
    /// the slot (not submitted).
    pub(crate) fn nowait_slot(&self, queue_busy: u32) -> Option<NowaitSlot<'_>> {
        let depth = self.nowait_depth.load(Relaxed);
        if depth != 0 {
            if queue_busy > depth {
                // One more is not a deep queue: at depth 1, the submitter
                // may send its next request while the last one's tag is
                // still being freed, after its completion woke it.
                if queue_busy > depth + 1 {
                    self.busy_hold.store(BUSY_HOLD, Relaxed);
                    self.busy_holds.fetch_add(1, Relaxed);
                }
                return None;
            }
            let hold = self.busy_hold.load(Relaxed);
            if hold > 0 {
                // Racy on purpose: a lost count only moves the switch back
                // by a request, and a plain store cannot wrap below zero.
                self.busy_hold.store(hold - 1, Relaxed);
                return None;
            }
        }
        let before = self.nowait_inflight.fetch_add(1, Relaxed);
        if depth != 0 && before >= depth {
            self.nowait_inflight.fetch_sub(1, Relaxed);
            return None;
        }
        Some(NowaitSlot(self))
    }

    /// Gives back the place of a `NOWAIT` submission that did the whole
    /// request.
    pub(crate) fn nowait_hit(&self) {
        self.nowait_hits.fetch_add(1, Relaxed);
        self.nowait_inflight.fetch_sub(1, Relaxed);
    }

    /// Gives back the place of a `NOWAIT` submission that went to the
    /// worker after it was submitted.
    pub(crate) fn eagain_fallback(&self) {
        self.eagain_fallbacks.fetch_add(1, Relaxed);
        self.nowait_inflight.fetch_sub(1, Relaxed);
    }

    /// Whether `stack_left` bytes of the submitter's stack are enough for
    /// a submission from `queue_rq` (`inline_stack_min`); counts the
    /// requests that go to the worker for want of it.
    pub(crate) fn stack_allows_inline(&self, stack_left: usize) -> bool {
        let min = self.inline_stack_min.load(Relaxed);
        if usize::try_from(min).is_ok_and(|min| stack_left >= min) {
            return true;
        }
        self.stack_deferred.fetch_add(1, Relaxed);
        false
    }

    /// Counts a buffered read done whole from `queue_rq`.
    pub(crate) fn cached_read(&self) {
        self.cached_reads.fetch_add(1, Relaxed);
    }

    /// Counts a buffered read from `queue_rq` that the page cache did not
    /// hold.
    pub(crate) fn cached_miss(&self) {
        self.cached_misses.fetch_add(1, Relaxed);
    }

    /// Counts a buffered read left to the worker because it would update
    /// the backing file's access time.
    pub(crate) fn atime_defer(&self) {
        self.atime_deferred.fetch_add(1, Relaxed);
    }

    /// Counts a run of the batching worker.
    pub(crate) fn worker_batch(&self) {
        self.worker_batches.fetch_add(1, Relaxed);
    }

    /// Counts a cgroup's batching worker added to the device.
    pub(crate) fn cgroup_worker_made(&self) {
        self.cgroup_workers_made.fetch_add(1, Relaxed);
        self.cgroup_workers.fetch_add(1, Relaxed);
    }

    /// Counts `n` cgroup batching workers dropped by the device.
    pub(crate) fn cgroup_workers_dropped(&self, n: usize) {
        self.cgroup_workers.fetch_sub(n as u64, Relaxed);
    }

    /// Counts a worker item, running until the returned guard goes.
    pub(crate) fn worker_io(&self) -> WorkerRun<'_> {
        self.worker_ios.fetch_add(1, Relaxed);
        let running = self.worker_running.fetch_add(1, Relaxed) + 1;
        let mut peak = self.worker_peak.load(Relaxed);
        while running > peak {
            match self.worker_peak.cmpxchg(peak, running, Relaxed) {
                Ok(_) => break,
                Err(seen) => peak = seen,
            }
        }
        WorkerRun(self)
    }
}

/// The least of the submitter's kernel stack, in bytes, that must be left
/// below the driver's frame for a submission from `queue_rq`: the deepest
/// call into a backing file measured below `Request::submit_direct`
/// (5,392 bytes on the debug kernel: ext4 allocating blocks for a direct
/// write, KASAN recording the allocation), rounded up, plus a reserve of
/// 4 KiB for interrupts and what the measurement missed. See
/// `docs/design.md`, "The submitter's stack and task state".
pub(crate) const INLINE_STACK_MIN: u32 = 10 * 1024;

/// After a request finds its hardware queue over `nowait_depth` + 1, how
/// many requests in a row must find it idle before `NOWAIT` is tried
/// again. A deep queue empties for a moment now and then (the submitter
/// reaped every completion at once); a submission from `queue_rq` then
/// would hold up the requests right behind it, which the worker on the
/// other CPU takes in parallel.
const BUSY_HOLD: u32 = 16;

/// A place among the `NOWAIT` submissions in flight, taken by
/// [`IoStats::nowait_slot`]. Dropped, it is given back at once (nothing
/// was submitted); once the submission is made, [`NowaitSlot::submitted`]
/// leaves it taken until [`IoStats::nowait_hit`] or
/// [`IoStats::eagain_fallback`].
pub(crate) struct NowaitSlot<'a>(&'a IoStats);

impl NowaitSlot<'_> {
    /// The submission was made: its completion or fallback gives the
    /// place back.
    pub(crate) fn submitted(self) {
        core::mem::forget(self);
    }
}

impl Drop for NowaitSlot<'_> {
    fn drop(&mut self) {
        self.0.nowait_inflight.fetch_sub(1, Relaxed);
    }
}

/// A worker item counted as running, until it is dropped.
pub(crate) struct WorkerRun<'a>(&'a IoStats);

impl Drop for WorkerRun<'_> {
    fn drop(&mut self) {
        self.0.worker_running.fetch_sub(1, Relaxed);
    }
}

/// The mode of `NOWAIT` submission number `n` when every `every`-th one
/// fails: the failures alternate between failing at once and at
/// completion, so that both fallback paths run.
fn nowait_mode_for(n: u64, every: u64) -> DirectMode {
    if n % every != 0 {
        DirectMode::NoWait
    } else if (n / every) % 2 == 0 {
        DirectMode::NoWaitFailNow
    } else {
        DirectMode::NoWaitFailLater
    }
}
