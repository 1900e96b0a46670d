// SPDX-License-Identifier: GPL-2.0

//! A buffered read of what the backing file's page cache already holds,
//! with no I/O, no readahead and no sleeping lock (`IOCB_NOWAIT |
//! IOCB_NOIO`), for `queue_rq`; but for the access time, which
//! `filemap_read()` updates at its end whatever the flags, and which the
//! caller checks first ([`BackingFile::read_would_touch_atime`]).
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h).

use super::{kiocb::iocb_nowait, request::rq_iter, Request};
use crate::sys::file::BackingFile;
use kernel::{bindings, prelude::*};

impl Request {
    /// Reads the request's data from `file` at `pos` if the file's page
    /// cache holds all of it, up to date: returns the request, and whether
    /// it was read whole. Anything else (a page missing, locked or not up
    /// to date, a readahead mark, the mapping's invalidate lock taken, an
    /// error, a short read at the end of the file) reads it partly or not
    /// at all, and the caller reads it again elsewhere, from the start.
    ///
    /// With `IOCB_NOWAIT | IOCB_NOIO`, `filemap_read()` starts no read and
    /// no readahead, waits for no page, and takes the mapping's invalidate
    /// lock only with a trylock: it takes no lock the caller might already
    /// hold a lock of the same class of (a filesystem on the loop device
    /// holds its file's invalidate lock across its readahead, which is
    /// where `queue_rq` runs from). Only for regular files: a block
    /// device's `read_iter` takes its inode's `i_rwsem` whatever the flags,
    /// of the class the loop device's own buffered reads hold. The file
    /// must have [`BackingFile::nowait_buffered_reads`].
    ///
    /// Gathering the bvecs of a several-bio request allocates: call this
    /// inside an [`InlineSubmitScope`](crate::sys::task::InlineSubmitScope).
    pub fn read_cached(self, file: &BackingFile, pos: u64) -> (Self, bool) {
        // SAFETY: By the type invariant the request is live; the iterator
        // is used below, while the request and `_bvecs` are.
        let (mut iter, _bvecs) = match unsafe { rq_iter(self.raw(), false) } {
            Ok(iter) => iter,
            Err(_) => return (self, false),
        };
        let Some(read_iter) = file.rw_iter_op(false) else {
            return (self, false);
        };
        let flags = iocb_nowait() | bindings::IOCB_NOIO as c_int;
        let mut iocb = self.kiocb(file, pos, flags, None);
        // SAFETY: The file is open (the caller's) and `read_iter` is its
        // own operation; the kiocb has no completion, so the call is
        // synchronous; the iterator covers the request's pages, which the
        // request, live until it is ended, keeps.
        let ret = unsafe { read_iter(&mut iocb, &mut iter.0) };
        let whole = ret == self.bytes() as isize;
        (self, whole)
    }
}
