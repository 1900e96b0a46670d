// SPDX-License-Identifier: GPL-2.0

//! The per-device counters of the I/O paths and the fault-injection knob
//! of the `NOWAIT` path, in debugfs under `loop/loopN/`:
//!
//! - `nowait_hits`: direct I/Os submitted from `queue_rq` with
//!   `IOCB_NOWAIT` that did the whole request;
//! - `eagain_fallbacks`: such submissions that did not (`EAGAIN`, mostly)
//!   and went to the worker;
//! - `worker_ios`: requests run by the worker, whatever the reason;
//! - `worker_peak` (read-write, write 0 to reset): the most worker items
//!   that ran at the same time, which shows the buffered path's
//!   concurrency;
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
    /// Worker items running now.
    worker_running: Atomic<u64>,
    worker_peak: Atomic<u64>,
    fail_nowait_every: Atomic<u32>,
    /// `NOWAIT` submissions, counted to pick the ones that fail.
    nowait_tries: Atomic<u64>,
}

impl IoStats {
    /// The counters at zero and no fault, as `name` under `root`; the
    /// files go with the returned scope.
    pub(crate) fn new<'a>(root: &'a Dir, name: &'a CStr) -> impl PinInit<Scope<Self>> + 'a {
        root.scope(
            Self {
                nowait_hits: Atomic::new(0),
                eagain_fallbacks: Atomic::new(0),
                worker_ios: Atomic::new(0),
                worker_running: Atomic::new(0),
                worker_peak: Atomic::new(0),
                fail_nowait_every: Atomic::new(0),
                nowait_tries: Atomic::new(0),
            },
            name,
            |s, dir| {
                dir.read_only_file(c"nowait_hits", &s.nowait_hits);
                dir.read_only_file(c"eagain_fallbacks", &s.eagain_fallbacks);
                dir.read_only_file(c"worker_ios", &s.worker_ios);
                dir.read_write_file(c"worker_peak", &s.worker_peak);
                dir.read_write_file(c"fail_nowait_every", &s.fail_nowait_every);
            },
        )
    }

    /// How the next `NOWAIT` submission goes, with the fault knob applied.
    pub(crate) fn nowait_mode(&self) -> DirectMode {
        let every = u64::from(self.fail_nowait_every.load(Relaxed));
        if every == 0 {
            return DirectMode::NoWait;
        }
        nowait_mode_for(self.nowait_tries.fetch_add(1, Relaxed), every)
    }

    pub(crate) fn nowait_hit(&self) {
        self.nowait_hits.fetch_add(1, Relaxed);
    }

    pub(crate) fn eagain_fallback(&self) {
        self.eagain_fallbacks.fetch_add(1, Relaxed);
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
