// SPDX-License-Identifier: GPL-2.0

//! Submission from `queue_rq`, on the submitter's own task: direct reads
//! and writes with `IOCB_NOWAIT`, and small buffered reads of what the
//! page cache holds. What cannot be done there goes to the worker.

use core::sync::atomic::Ordering;

use crate::device::{IoConfig, LoopDevice};
use crate::sys::{
    blk::{ReqOp, Request},
    task::{self, InlineSubmitScope},
};

/// The largest buffered read that [`LoopDevice::read_cached`] tries from
/// `queue_rq`: four pages.
const SMALL_READ: u32 = 16 * 1024;

impl LoopDevice {
    /// Tries a direct read or write from `queue_rq` with `IOCB_NOWAIT`, or
    /// a buffered read from the page cache ([`LoopDevice::read_cached`]),
    /// so that it costs no switch to the worker. Returns the request if it
    /// was not submitted, for the worker.
    ///
    /// Only when it is worth it: direct reads, and direct writes to a block
    /// device or to a regular file with no write waiting for the worker
    /// (writes that allocate blocks get `EAGAIN`, and so would the ones
    /// after them), only on a queue that is nearly idle (`nowait_depth`);
    /// small buffered reads of a regular file; only to a file that honours
    /// `IOCB_NOWAIT` (`FMODE_NOWAIT`): another one (FUSE, overlayfs) may
    /// block or act with the submitter's credentials. Direct I/O only from
    /// a submitter whose bios count against the cgroup that issued the
    /// request (a page-cache read does no I/O), and only on a device that
    /// no filesystem or driver holds (they submit with their own locks
    /// held, of the same classes as the backing filesystem's). Never from
    /// inside a filesystem transaction or memory reclaim, nor with less
    /// than `inline_stack_min` of the submitter's stack left.
    pub(super) fn try_nowait(&self, io: &IoConfig, rq: Request) -> Option<Request> {
        let write = match rq.op() {
            ReqOp::Read => false,
            ReqOp::Write => true,
            _ => return Some(rq),
        };
        if !self.nowait.load(Ordering::Relaxed) || !io.nowait || !task::may_submit_inline() {
            return Some(rq);
        }
        if !io.direct {
            if write || !io.regular || !io.file.nowait_buffered_reads() {
                return Some(rq);
            }
            return self.read_cached(io, rq);
        }
        if write && io.regular && self.worker_writes.load(Ordering::Relaxed) > 0 {
            return Some(rq);
        }
        // The backing device's bios would count against the submitter's
        // cgroup: only if that is the issuer's.
        if !rq.issued_by_current() {
            return Some(rq);
        }
        // A filesystem on the device submits some I/O with its own locks
        // held: ext4 reads a block bitmap under the file's i_data_sem, to
        // discard its preallocations at the last close. The backing file's
        // direct read takes locks of its filesystem, of the same classes
        // when that is ext4 too (lockdep: recursive locking of i_data_sem,
        // found on a stack of three devices). The worker takes what such a
        // holder submits, as C's does all; a page-cache read takes no
        // sleeping lock, and stays (but for the atime update, which
        // read_cached leaves to the worker).
        if rq.disk_claimed() {
            return Some(rq);
        }
        let Some(slot) = self.stats.nowait_slot(rq.queue_busy()) else {
            return Some(rq);
        };
        if !self.stack_allows_inline() {
            return Some(rq);
        }
        let pos = rq.pos() + io.offset;
        let mode = self.stats.nowait_mode();
        let _scope = InlineSubmitScope::enter();
        match rq.submit_direct::<Self>(io.file.clone_ref(), pos, write, mode) {
            Ok(()) => {
                slot.submitted();
                None
            }
            Err(rq) => Some(rq),
        }
    }

    /// Reads `rq` from `queue_rq` if the backing file's page cache holds
    /// all of it, with no I/O and no sleeping lock
    /// ([`Request::read_cached`]). Returns the request if it was not read
    /// whole, for the worker, which reads it again.
    ///
    /// Only small reads, at any queue depth: copying a few pages costs less
    /// than the hand-off to the worker, and a miss costs only a lookup. A
    /// large read is faster in the worker, even one at a time: its copy
    /// there runs beside the completions of the backing file's readahead
    /// on the submitter's CPU (in one TCG boot, sequential 1 MiB reads fell
    /// from 519–546 to 402–419 IOPS when copied here).
    ///
    /// Not while a read would update the backing file's access time (the
    /// first read after a write, with `relatime`): `filemap_read()` ends,
    /// hit or miss, in `file_accessed()`, and ext4 dirties the inode in a
    /// transaction of its own, which may wait for the journal and read the
    /// inode's block from the backing disk, on the submitter's stack and
    /// with its locks held. The worker makes that read, and the update, as
    /// C's does; the reads after it are tried here again. (A write that
    /// lands between this check and the read's end still has the update
    /// made here: the check narrows the window to that, it cannot close it
    /// without a read that skips `file_accessed()`.)
    fn read_cached(&self, io: &IoConfig, rq: Request) -> Option<Request> {
        if rq.bytes() > SMALL_READ || !self.stack_allows_inline() {
            return Some(rq);
        }
        if io.file.read_would_touch_atime() {
            self.stats.atime_defer();
            return Some(rq);
        }
        let pos = rq.pos() + io.offset;
        let _scope = InlineSubmitScope::enter();
        match rq.read_cached(&io.file, pos) {
            (rq, true) => {
                self.stats.cached_read();
                let bytes = rq.bytes() as usize;
                Self::finish_rw(rq, Ok(bytes));
                None
            }
            (rq, false) => {
                self.stats.cached_miss();
                Some(rq)
            }
        }
    }

    /// Whether enough of the submitter's stack is left for a submission
    /// from `queue_rq` (`inline_stack_min`). The stack is the submitter's,
    /// not ours: what the backing filesystem and the devices under it use
    /// comes on top of whatever called `queue_rq`, which may be a
    /// filesystem's writeback on a stack of devices.
    fn stack_allows_inline(&self) -> bool {
        self.stats.stack_allows_inline(task::stack_left())
    }
}
