// SPDX-License-Identifier: GPL-2.0

//! A buffered read from the page cache that does not wait for the backing
//! file's I/O (`IOCB_WAITQ`), as io_uring's buffered reads.
//!
//! C header: [`include/linux/pagemap.h`](srctree/include/linux/pagemap.h).

use super::{cmd::Cmd, request::rq_iter, DiskDriver, Request};
use crate::sys::file::BackingFile;
use core::mem::ManuallyDrop;
use kernel::{bindings, prelude::*};

// The C helpers of `helpers.c`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_page_wake_take(wait: *mut bindings::wait_queue_entry, key: *mut c_void) -> bool;
}

impl Request {
    /// Reads the request's data from `file` at `pos` through the page cache
    /// without waiting for it, as io_uring's buffered reads do (`IOCB_WAITQ`):
    /// what is cached is copied; what is not is read into the cache, and if the
    /// request must wait for a page before any of it is copied, it waits on
    /// that page asynchronously and comes back in
    /// [`QueueOperations::page_ready`](super::QueueOperations::page_ready) once
    /// the page is unlocked, for the caller to read it again (from the cache
    /// now). The file must have [`BackingFile::async_buffered_reads`].
    ///
    /// It may still sleep (the readahead allocates, the filesystem may
    /// read its block map, and the mapping's invalidate lock is taken),
    /// but not for the data. Call it inside a
    /// [`InlineSubmitScope`](crate::sys::task::InlineSubmitScope) or a
    /// [`WorkerScope`](crate::sys::task::WorkerScope).
    pub fn read_cached<T: DiskDriver>(self, file: &BackingFile, pos: u64) -> CachedRead {
        // SAFETY: By the type invariant the request is live; the iterator
        // is used below, while the request and `_bvecs` are.
        let (mut iter, _bvecs) = match unsafe { rq_iter(self.raw(), false) } {
            Ok(iter) => iter,
            Err(_) => return CachedRead::NotDone(self),
        };
        let Some(read_iter) = file.rw_iter_op(false) else {
            return CachedRead::NotDone(self);
        };
        let bytes = self.bytes();
        // With `IOCB_WAITQ`, `filemap_read()` copies what is cached and up
        // to date, starts the read of what is not, and if it copied nothing
        // yet and must wait for a page, queues `ki_waitq` on that page and
        // returns `-EIOCBQUEUED`: its wake function is then called once the
        // page is unlocked. Any other result leaves nothing queued.
        let mut iocb = self.kiocb(file, pos, bindings::IOCB_WAITQ as c_int, None);
        let rq = ManuallyDrop::new(self);
        let raw = rq.raw();
        // SAFETY: The page wait is in the request's command, free (nothing
        // else waits or runs for the request), and lives as long as the
        // request, which the wait owns once it is queued: from then on the
        // request is not touched here, since `page_wake::<T>`, for the disk
        // of `T` the request belongs to, may end it at once. The entry is
        // set up as `init_waitqueue_func_entry()` and an empty list head.
        // The file is open (the caller's) and `read_iter` is its own
        // operation, which takes `IOCB_WAITQ`; the iterator covers the
        // request's pages.
        let ret = unsafe {
            let wpq = &raw mut (*Cmd::of(raw)).page_wait;
            let wait = &raw mut (*wpq).wait;
            (*wait).func = Some(page_wake::<T>);
            (*wait).private = raw.cast();
            (*wait).flags = 0;
            let entry = &raw mut (*wait).entry;
            (*entry).next = entry;
            (*entry).prev = entry;
            iocb.ki_waitq = wpq;
            read_iter(&mut iocb, &mut iter.0)
        };
        if ret == -(bindings::EIOCBQUEUED as isize) {
            return CachedRead::Waiting;
        }
        let rq = ManuallyDrop::into_inner(rq);
        if ret == bytes as isize {
            CachedRead::Done(rq)
        } else {
            CachedRead::NotDone(rq)
        }
    }
}

/// What became of [`Request::read_cached`].
pub enum CachedRead {
    /// The whole request was read.
    Done(Request),
    /// The request waits for a page; it comes back in
    /// [`QueueOperations::page_ready`](super::QueueOperations::page_ready).
    Waiting,
    /// Not the whole request: a short count, an error, or a wait that
    /// could not be queued. Nothing waits for it.
    NotDone(Request),
}

/// The wake function of the page wait of [`Request::read_cached`].
///
/// # Safety
///
/// Called by the page's waitqueue, under its lock, for the `page_wait` of
/// the command of a request of a disk made by [`Disk::new`] for `T`, queued
/// by `read_cached`, with `key` a `struct wait_page_key`.
unsafe extern "C" fn page_wake<T: DiskDriver>(
    wait: *mut bindings::wait_queue_entry,
    _mode: c_uint,
    _flags: c_int,
    key: *mut c_void,
) -> c_int {
    // SAFETY: `wait` is queued and `key` is the waker's, as above. The
    // entry is taken off the queue for the wakeup of its page only, under
    // the queue's lock, so this goes on at most once per queueing.
    if !unsafe { rloop_page_wake_take(wait, key) } {
        return 0;
    }
    // SAFETY: `private` is the request, which the wait owned and gives up
    // here, once (taken off the queue above).
    let (this, rq) = unsafe { Request::take_back::<T>((*wait).private.cast()) };
    T::page_ready(this, rq);
    1
}
