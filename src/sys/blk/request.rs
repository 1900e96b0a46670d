// SPDX-License-Identifier: GPL-2.0

//! A request the driver owns ([`Request`]), its status ([`BlkStatus`]) and
//! operation ([`ReqOp`]), and the `iov_iter` over its data.
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h).

use super::{operations::Callbacks, DiskDriver, DiskRef};
use core::ptr::NonNull;
use kernel::{bindings, prelude::*, sync::ArcBorrow};

// The C helpers of `src/helpers/`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_rq_op(rq: *mut bindings::request) -> c_uint;
    fn rloop_rq_pos(rq: *mut bindings::request) -> bindings::sector_t;
    pub(super) fn rloop_rq_bytes(rq: *mut bindings::request) -> c_uint;
    fn rloop_rq_nounmap(rq: *mut bindings::request) -> bool;
    fn rloop_rq_nr_bvec(rq: *mut bindings::request) -> c_uint;
    fn rloop_rq_bvecs(
        rq: *mut bindings::request,
        out: *mut bindings::bio_vec,
        max: c_uint,
    ) -> c_uint;
    fn rloop_rq_queue_busy(rq: *mut bindings::request) -> u32;
    fn rloop_rq_disk_claimed(rq: *mut bindings::request) -> bool;
    fn rloop_rq_zero_fill(rq: *mut bindings::request);
    fn rloop_rq_iter_single(
        rq: *mut bindings::request,
        iter: *mut bindings::iov_iter,
        dir: c_uint,
    ) -> bool;
    pub(super) fn rloop_rq_ioprio(rq: *mut bindings::request) -> u16;
}

/// A block status code, `blk_status_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkStatus(pub(super) bindings::blk_status_t);

impl BlkStatus {
    /// Success.
    pub const OK: Self = Self(0);

    /// The status the block layer uses for `err`.
    pub fn from_error(err: Error) -> Self {
        // SAFETY: `errno_to_blk_status` is a pure table lookup on any value.
        Self(unsafe { bindings::errno_to_blk_status(err.to_errno()) })
    }

    /// A generic I/O error, `BLK_STS_IOERR`.
    pub fn io_error() -> Self {
        Self::from_error(EIO)
    }
}

/// The operation of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqOp {
    /// `REQ_OP_READ`.
    Read,
    /// `REQ_OP_WRITE`.
    Write,
    /// `REQ_OP_FLUSH`.
    Flush,
    /// `REQ_OP_DISCARD`.
    Discard,
    /// `REQ_OP_WRITE_ZEROES`.
    WriteZeroes,
    /// Anything else.
    Other,
}

impl ReqOp {
    /// Whether the operation changes data, as `op_is_write()` (for the
    /// operations a loop device takes).
    pub fn writes(self) -> bool {
        matches!(self, Self::Write | Self::Discard | Self::WriteZeroes)
    }
}

/// A request the driver owns, from `queue_rq` until it ends it.
///
/// Ownership of the request moves with this value: ending it consumes it,
/// and dropping it without ending ends it with `BLK_STS_IOERR`, so every
/// request ends exactly once.
///
/// # Invariants
///
/// `ptr` is a started request, owned by the driver, not yet ended.
pub struct Request {
    pub(super) ptr: NonNull<bindings::request>,
}

// SAFETY: A started request may be processed and ended on any thread.
unsafe impl Send for Request {}

impl Request {
    pub(super) fn raw(&self) -> *mut bindings::request {
        self.ptr.as_ptr()
    }

    /// Takes back a request that the driver gave up to a callback of this
    /// layer (a work item, a page wait, a kiocb), with the driver data of
    /// its queue, for the driver's handler of that callback.
    ///
    /// # Safety
    ///
    /// `rq` is a started request of a disk made by [`Disk::new`] for `T`,
    /// not yet ended, that was given up to the caller, which gives it back
    /// once. The borrow is used only while the request is in flight.
    pub(super) unsafe fn take_back<'a, T: DiskDriver>(
        rq: *mut bindings::request,
    ) -> (ArcBorrow<'a, T>, Self) {
        // SAFETY: The request is live, so its queue is; the queue data is
        // alive until `free_disk`, which cannot come while a request is in
        // flight.
        let this = unsafe { Callbacks::<T>::borrow((*(*rq).q).queuedata) };
        // SAFETY: A live request is not null.
        let ptr = unsafe { NonNull::new_unchecked(rq) };
        // INVARIANT: The request is started, not ended, and now the
        // returned value's alone.
        (this, Self { ptr })
    }

    /// The disk the request is for.
    pub fn disk(&self) -> &DiskRef {
        // SAFETY: By the type invariant the request is live, so its queue
        // is, and the queue's disk lives until the queue has drained.
        unsafe { DiskRef::from_raw((*(*self.raw()).q).disk) }
    }

    /// The operation.
    pub fn op(&self) -> ReqOp {
        // SAFETY: By the type invariant the request is live.
        match unsafe { rloop_rq_op(self.raw()) } {
            bindings::req_op_REQ_OP_READ => ReqOp::Read,
            bindings::req_op_REQ_OP_WRITE => ReqOp::Write,
            bindings::req_op_REQ_OP_FLUSH => ReqOp::Flush,
            bindings::req_op_REQ_OP_DISCARD => ReqOp::Discard,
            bindings::req_op_REQ_OP_WRITE_ZEROES => ReqOp::WriteZeroes,
            _ => ReqOp::Other,
        }
    }

    /// Position on the device, in bytes.
    pub fn pos(&self) -> u64 {
        // SAFETY: By the type invariant the request is live.
        (unsafe { rloop_rq_pos(self.raw()) }) << 9
    }

    /// Remaining length, in bytes.
    pub fn bytes(&self) -> u32 {
        // SAFETY: By the type invariant the request is live.
        unsafe { rloop_rq_bytes(self.raw()) }
    }

    /// The requests of this request's hardware queue that hold a driver
    /// tag, this one included: those in flight in the driver, and those
    /// on their way to it (in a plug being flushed, for one).
    pub fn queue_busy(&self) -> u32 {
        // SAFETY: By the type invariant the request is live and started, so
        // its hardware queue and tags are.
        unsafe { rloop_rq_queue_busy(self.raw()) }
    }

    /// Whether a holder has the request's disk, or one of its partitions,
    /// open exclusively (a mounted filesystem, device-mapper, mkfs): then
    /// the request may come from kernel code that holds locks of its own.
    /// A hint: a claim can come or go at any moment.
    pub fn disk_claimed(&self) -> bool {
        // SAFETY: By the type invariant the request is live and started, so
        // its queue and disk are.
        unsafe { rloop_rq_disk_claimed(self.raw()) }
    }

    /// Whether a write-zeroes request must keep the blocks allocated
    /// (`REQ_NOUNMAP`).
    pub fn no_unmap(&self) -> bool {
        // SAFETY: By the type invariant the request is live.
        unsafe { rloop_rq_nounmap(self.raw()) }
    }

    /// Zero-fills all the request's data.
    pub fn zero_fill(&self) {
        // SAFETY: By the type invariant the request is live.
        unsafe { rloop_rq_zero_fill(self.raw()) };
    }

    /// Ends the request with `status`.
    pub fn end(self, status: BlkStatus) {
        let rq = core::mem::ManuallyDrop::new(self);
        // SAFETY: By the type invariant the request is started and not
        // ended; `rq` is not used again.
        unsafe { bindings::blk_mq_end_request(rq.raw(), status.0) };
    }

    /// Completes the first `done` bytes and requeues the rest.
    pub fn advance_and_requeue(self, done: u32) {
        let rq = core::mem::ManuallyDrop::new(self);
        // SAFETY: By the type invariant the request is started; `done` is
        // less than its length, so the update leaves the request live, and
        // requeueing hands it back to blk-mq.
        unsafe {
            bindings::blk_update_request(rq.raw(), BlkStatus::OK.0, done);
            bindings::blk_mq_requeue_request(rq.raw(), true);
        }
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        // SAFETY: A request dropped without `end` is still owned: end it.
        unsafe { bindings::blk_mq_end_request(self.raw(), BlkStatus::io_error().0) };
    }
}

/// A raw `iov_iter`, zeroed before use.
#[repr(transparent)]
pub(super) struct RawIter(pub(super) bindings::iov_iter);

// SAFETY: All zeroes is a valid (empty) `iov_iter`.
unsafe impl Zeroable for RawIter {}

/// An `iov_iter` over the data of `rq`: over the bio's own bvecs for a
/// one-bio request, else over an array the bvecs are gathered into, as C
/// does; that allocates.
///
/// # Safety
///
/// `rq` is a live request owned by the caller; the iterator is valid while
/// the request and the returned vector are.
pub(super) unsafe fn rq_iter(
    rq: *mut bindings::request,
    write: bool,
) -> Result<(RawIter, KVec<bindings::bio_vec>)> {
    let dir = if write {
        bindings::ITER_SOURCE
    } else {
        bindings::ITER_DEST
    };
    let mut iter: RawIter = pin_init::zeroed();
    // SAFETY: The request is live; the helper fills `iter` for a one-bio
    // request and leaves it otherwise.
    if unsafe { rloop_rq_iter_single(rq, &mut iter.0, dir) } {
        return Ok((iter, KVec::new()));
    }
    // SAFETY: The request is live.
    let n = unsafe { rloop_rq_nr_bvec(rq) } as usize;
    let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
    // SAFETY: `v` has room for `n` bvecs; the helper writes at most `n`;
    // the iterator covers the request's bytes over them. Moving the vector
    // later moves only its pointer: the bvecs stay put.
    unsafe {
        let got = rloop_rq_bvecs(rq, v.as_mut_ptr(), n as c_uint);
        v.inc_len(got as usize);
        bindings::iov_iter_bvec(
            &mut iter.0,
            dir,
            v.as_ptr(),
            got as c_ulong,
            rloop_rq_bytes(rq) as usize,
        );
    }
    Ok((iter, v))
}
