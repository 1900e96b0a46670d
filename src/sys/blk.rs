// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers for the block layer pieces a loop driver needs and the
//! kernel crate's `block::mq` does not offer: a tag set whose queue and disk
//! data is an [`Arc`] of the driver's device object, a disk with a fixed major,
//! chosen minors and `block_device_operations` (open, release, ioctl), and the
//! registration of a block major with a probe callback.
//!
//! C headers: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h),
//! [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h).

use super::file::BackingFile;
use core::{
    fmt::Write,
    marker::PhantomData,
    mem::{ManuallyDrop, MaybeUninit},
    ptr::NonNull,
    sync::atomic::{AtomicIsize, AtomicPtr, AtomicU32, Ordering},
};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    prelude::*,
    str::{CStr, NullTerminatedFormatter},
    sync::{Arc, ArcBorrow},
    types::{ForeignOwnable, Opaque},
    ModuleMetadata,
};

// The C helpers of `helpers.c`. bindgen's structs are only passed by pointer,
// so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_disk_openers(disk: *mut bindings::gendisk) -> c_uint;
    fn rloop_disk_set_part_scan(disk: *mut bindings::gendisk, enable: bool);
    fn rloop_rq_op(rq: *mut bindings::request) -> c_uint;
    fn rloop_rq_pos(rq: *mut bindings::request) -> bindings::sector_t;
    fn rloop_rq_bytes(rq: *mut bindings::request) -> c_uint;
    fn rloop_rq_nounmap(rq: *mut bindings::request) -> bool;
    fn rloop_rq_nr_bvec(rq: *mut bindings::request) -> c_uint;
    fn rloop_rq_bvecs(
        rq: *mut bindings::request,
        out: *mut bindings::bio_vec,
        max: c_uint,
    ) -> c_uint;
    fn rloop_rq_queue_busy(rq: *mut bindings::request) -> u32;
    fn rloop_rq_zero_fill(rq: *mut bindings::request);
    fn rloop_rq_iter_single(
        rq: *mut bindings::request,
        iter: *mut bindings::iov_iter,
        dir: c_uint,
    ) -> bool;
    fn rloop_mode_write(mode: bindings::blk_mode_t) -> bool;
    fn rloop_mode_excl(mode: bindings::blk_mode_t) -> bool;
    fn rloop_disk_uevent_change(disk: *mut bindings::gendisk);
    fn rloop_disk_suppress_uevents(disk: *mut bindings::gendisk, suppress: bool);
    fn rloop_queue_freeze(q: *mut bindings::request_queue) -> c_uint;
    fn rloop_queue_unfreeze(q: *mut bindings::request_queue, memflags: c_uint);
    fn rloop_limits_start_update(q: *mut bindings::request_queue, lim: *mut bindings::queue_limits);
    fn rloop_limits_set_features(lim: *mut bindings::queue_limits, write_cache: bool, rot: bool);
    fn rloop_disk_rescan_partitions(disk: *mut bindings::gendisk, open_mutex_held: bool) -> c_int;
    fn rloop_sysfs_set_show(show: unsafe extern "C" fn(*mut c_void, c_int, *mut c_char) -> isize);
    fn rloop_sysfs_set_store(
        store: unsafe extern "C" fn(*mut c_void, c_int, *const c_char, usize) -> isize,
    );
    fn rloop_disk_sysfs_add(disk: *mut bindings::gendisk) -> c_int;
    fn rloop_disk_sysfs_remove(disk: *mut bindings::gendisk);
    fn rloop_file_path_show(file: *mut bindings::file, buf: *mut c_char) -> isize;
    fn rloop_rq_ioprio(rq: *mut bindings::request) -> u16;
    fn rloop_kiocb_start_write(iocb: *mut bindings::kiocb);
    fn rloop_kiocb_end_write(iocb: *mut bindings::kiocb);
    fn rloop_limits_cancel_update(q: *mut bindings::request_queue);
    fn rloop_kiocb_start_write_nowait(iocb: *mut bindings::kiocb) -> bool;
    fn rloop_iocb_nowait() -> c_int;
    fn rloop_alloc_io_workqueue() -> *mut bindings::workqueue_struct;
    fn rloop_read_waitq(
        file: *mut bindings::file,
        pos: bindings::loff_t,
        ioprio: u16,
        iter: *mut bindings::iov_iter,
        wpq: *mut bindings::wait_page_queue,
        func: bindings::wait_queue_func_t,
        private: *mut c_void,
    ) -> isize;
    fn rloop_page_wake_take(wait: *mut bindings::wait_queue_entry, key: *mut c_void) -> bool;
    fn rloop_llist_add(node: *mut bindings::llist_node, head: *mut bindings::llist_head) -> bool;
    fn rloop_llist_del_all(head: *mut bindings::llist_head) -> *mut bindings::llist_node;
    fn rloop_queue_rq_work(
        wq: *mut bindings::workqueue_struct,
        work: *mut bindings::work_struct,
        func: unsafe extern "C" fn(*mut bindings::work_struct),
    );
    fn rloop_queue_disable_wbt_default(q: *mut bindings::request_queue);
}

/// How [`Request::submit_direct`] submits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectMode {
    /// May block, as from a worker.
    Blocking,
    /// With `IOCB_NOWAIT`, from a context that should not wait.
    NoWait,
    /// Fault injection: as `NoWait`, but the file is not called and the
    /// submission fails at once with `EAGAIN`.
    NoWaitFailNow,
    /// Fault injection: as `NoWait`, and the I/O runs, but its result is
    /// taken as `EAGAIN` when it ends.
    NoWaitFailLater,
}

/// A block status code, `blk_status_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkStatus(bindings::blk_status_t);

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
    ptr: NonNull<bindings::request>,
}

// SAFETY: A started request may be processed and ended on any thread.
unsafe impl Send for Request {}

impl Request {
    fn raw(&self) -> *mut bindings::request {
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
    unsafe fn take_back<'a, T: DiskDriver>(rq: *mut bindings::request) -> (ArcBorrow<'a, T>, Self) {
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

    /// Whether a write-zeroes request must keep the blocks allocated
    /// (`REQ_NOUNMAP`).
    pub fn no_unmap(&self) -> bool {
        // SAFETY: By the type invariant the request is live.
        unsafe { rloop_rq_nounmap(self.raw()) }
    }

    /// Reads into the request's data from `file` at `pos` (`write ==
    /// false`), or writes it there, synchronously through the page cache;
    /// returns the bytes moved, short at the end of the file. As C's
    /// `lo_rw_aio()` without `use_aio`, the kiocb has no flags: an
    /// `O_DIRECT` backing file is still read and written buffered here.
    /// Writes hold the file's freeze protection for the call. Gathering
    /// the bvecs of a several-bio request allocates: call this inside a
    /// [`super::WorkerScope`].
    pub fn transfer(&self, file: &BackingFile, pos: u64, write: bool) -> Result<usize> {
        let op = file.rw_iter_op(write).ok_or(EINVAL)?;
        // SAFETY: By the type invariant the request is live; the iterator
        // is used below, while the request and `_bvecs` are.
        let (mut iter, _bvecs) = unsafe { rq_iter(self.raw(), write) }?;
        let mut iocb = bindings::kiocb {
            ki_filp: file.raw(),
            ki_pos: pos as bindings::loff_t,
            // SAFETY: By the type invariant the request is live.
            ki_ioprio: unsafe { rloop_rq_ioprio(self.raw()) },
            // No `ki_complete`: a synchronous kiocb.
            ..pin_init::zeroed()
        };
        // SAFETY: The kiocb is filled in for a file the caller keeps open;
        // the iterator covers the request's pages; `op` is the file's own
        // operation. A synchronous kiocb is done when `op` returns.
        let ret = unsafe {
            if write {
                rloop_kiocb_start_write(&mut iocb);
            }
            let ret = op(&mut iocb, &mut iter.0);
            if write {
                rloop_kiocb_end_write(&mut iocb);
            }
            ret
        };
        if ret < 0 {
            Err(Error::from_errno(ret as c_int))
        } else {
            Ok(ret as usize)
        }
    }

    /// Reads the request's data from `file` at `pos` through the page cache
    /// without waiting for it, as io_uring's buffered reads do
    /// (`IOCB_WAITQ`): what is cached is copied; what is not is read into
    /// the cache, and if the request must wait for a page before any of it
    /// is copied, it waits on that page asynchronously and comes back in
    /// [`DiskDriver::page_ready`] once the page is unlocked, for the caller
    /// to read it again (from the cache now). The file must have
    /// [`BackingFile::async_buffered_reads`].
    ///
    /// It may still sleep (the readahead allocates, the filesystem may
    /// read its block map, and the mapping's invalidate lock is taken),
    /// but not for the data. Call it inside a
    /// [`super::InlineSubmitScope`] or a [`super::WorkerScope`].
    pub fn read_cached<T: DiskDriver>(self, file: &BackingFile, pos: u64) -> CachedRead {
        // SAFETY: By the type invariant the request is live; the iterator
        // is used below, while the request and `_bvecs` are.
        let (mut iter, _bvecs) = match unsafe { rq_iter(self.raw(), false) } {
            Ok(iter) => iter,
            Err(_) => return CachedRead::NotDone(self),
        };
        let bytes = self.bytes();
        let rq = ManuallyDrop::new(self);
        let raw = rq.raw();
        // SAFETY: The file is open (the caller's) and reads with
        // `read_iter`, which takes `IOCB_WAITQ`; the iterator covers the
        // request's pages. The page wait is in the request's command, free
        // (nothing else waits or runs for the request), and lives as long
        // as the request, which the wait owns once it is queued: from then
        // on the request is not touched here, since `page_wake::<T>`, for
        // the disk of `T` the request belongs to, may end it at once.
        let ret = unsafe {
            let cmd = Cmd::of(raw);
            rloop_read_waitq(
                file.raw(),
                pos as bindings::loff_t,
                rloop_rq_ioprio(raw),
                &mut iter.0,
                &raw mut (*cmd).page_wait,
                Some(page_wake::<T>),
                raw.cast(),
            )
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

    /// Submits the request's data as direct, asynchronous I/O to `file` at
    /// `pos`: a read (`write == false`) into the request, or a write from
    /// it, through a kiocb with `IOCB_DIRECT` in the request's own data, as
    /// `lo_rw_aio()`. Writes take the file's freeze protection until the
    /// I/O ends.
    ///
    /// Whether the filesystem finishes the I/O at once or later from its
    /// `ki_complete`, the request then goes to `blk_mq_complete_request`,
    /// and the driver `T` gets it back, exactly once, in
    /// [`DiskDriver::direct_done`] with the byte count or the error.
    ///
    /// With a `NoWait` `mode` the kiocb also has `IOCB_NOWAIT`, and the
    /// freeze protection is only tried. If it cannot be had, the file has
    /// no operation for it, or the bvecs of a several-bio request cannot
    /// be gathered, nothing is submitted and the request comes back as
    /// `Err`. Once submitted, any result but the whole request done
    /// (`EAGAIN` above all, but also an error or a short count, which a
    /// blocking retry then settles) gives the request
    /// back in [`DiskDriver::nowait_fallback`] instead, with everything the
    /// attempt held released.
    ///
    /// Gathering the bvecs of a several-bio request allocates: call this
    /// inside a [`super::WorkerScope`] or a [`super::InlineSubmitScope`].
    pub fn submit_direct<T: DiskDriver>(
        self,
        file: BackingFile,
        pos: u64,
        write: bool,
        mode: DirectMode,
    ) -> Result<(), Request> {
        let nowait = mode != DirectMode::Blocking;
        let Some(op) = file.rw_iter_op(write) else {
            if nowait {
                return Err(self);
            }
            self.end(BlkStatus::io_error());
            return Ok(());
        };
        // SAFETY: By the type invariant the request is live.
        let (mut iter, bvecs) = match unsafe { rq_iter(self.raw(), write) } {
            Ok(it) => it,
            Err(_) if nowait => return Err(self),
            Err(_) => {
                self.end(BlkStatus::io_error());
                return Ok(());
            }
        };
        let mut flags = bindings::IOCB_DIRECT as c_int;
        if nowait {
            // SAFETY: Returns a constant.
            flags |= unsafe { rloop_iocb_nowait() };
        }
        let raw = self.raw();
        // SAFETY: The request is live and owned by the driver, so its
        // command is ours to fill; nothing else uses it until the kiocb is
        // submitted below. Every field is written before it is read.
        let cmd = unsafe {
            let cmd = Cmd::of(raw);
            (&raw mut (*cmd).iocb).write(bindings::kiocb {
                ki_filp: file.raw(),
                ki_pos: pos as bindings::loff_t,
                ki_complete: Some(Cmd::ki_complete::<T>),
                ki_flags: flags,
                ki_ioprio: rloop_rq_ioprio(raw),
                ..pin_init::zeroed()
            });
            (&raw mut (*cmd).refs).write(AtomicU32::new(2));
            (&raw mut (*cmd).ret).write(AtomicIsize::new(0));
            (&raw mut (*cmd).nowait).write(nowait);
            (&raw mut (*cmd).fail_late).write(mode == DirectMode::NoWaitFailLater);
            cmd
        };
        if write {
            // SAFETY: The kiocb is filled in, for a file the caller holds.
            unsafe {
                if !nowait {
                    rloop_kiocb_start_write(&raw mut (*cmd).iocb);
                } else if !rloop_kiocb_start_write_nowait(&raw mut (*cmd).iocb) {
                    // Frozen: not submitted, and the command is unused.
                    return Err(self);
                }
            }
        }
        // From here the command owns the request, until `Cmd::put` hands it
        // to `blk_mq_complete_request` or to `T::nowait_fallback`.
        core::mem::forget(self);
        // SAFETY: The command is ours until submission (see above).
        unsafe {
            (&raw mut (*cmd).io).write(MaybeUninit::new(InFlight {
                _file: file,
                _bvecs: bvecs,
                write,
            }))
        };
        let ret = if mode == DirectMode::NoWaitFailNow {
            -(bindings::EAGAIN as isize)
        } else {
            // SAFETY: The kiocb is filled in and its file is held by the
            // command until the I/O ends; the iterator covers the request's
            // pages, and the bvecs it points to are held by the command
            // too. `op` is the file's own operation.
            unsafe { op(&raw mut (*cmd).iocb, &mut iter.0) }
        };
        // SAFETY: The submitter's reference; after it the command may be
        // completed, and it is not used again unless the completion's
        // reference is still ours (a result other than `-EIOCBQUEUED`).
        unsafe { Cmd::put::<T>(cmd) };
        if ret != -(bindings::EIOCBQUEUED as isize) {
            // SAFETY: The filesystem finished at once and will not call
            // `ki_complete`: its reference is ours to drop.
            unsafe { Cmd::ki_complete::<T>(cmd.cast(), ret as c_long) };
        }
        Ok(())
    }

    /// Hands the request to a worker of `wq`, where the driver `T` gets it
    /// back in [`DiskDriver::run_queued`], in a context that may sleep.
    /// The work item is the request's own, in its command, so requests
    /// handed over run concurrently. May be called from any context.
    pub fn queue_work<T: DiskDriver>(self, wq: &IoWorkqueue) {
        let rq = ManuallyDrop::new(self);
        // SAFETY: The request is live and owned by the driver; its command
        // is not in use by a direct I/O (which gives the request back only
        // when it is over), so its work item is free. The work function is
        // for `T`, whose disk the request belongs to; the workqueue lives
        // until every work item on it is done (`IoWorkqueue`'s drop).
        unsafe {
            let cmd = Cmd::of(rq.raw());
            rloop_queue_rq_work(wq.ptr.as_ptr(), &raw mut (*cmd).work, run_work::<T>);
        }
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

/// What became of [`Request::read_cached`].
pub enum CachedRead {
    /// The whole request was read.
    Done(Request),
    /// The request waits for a page; it comes back in
    /// [`DiskDriver::page_ready`].
    Waiting,
    /// Not the whole request: a short count, an error, or a wait that
    /// could not be queued. Nothing waits for it.
    NotDone(Request),
}

/// A raw `iov_iter`, zeroed before use.
#[repr(transparent)]
pub(crate) struct RawIter(pub(crate) bindings::iov_iter);

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
unsafe fn rq_iter(
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

/// What a direct I/O holds while it is in flight.
struct InFlight {
    /// `ki_filp`'s reference, held until the I/O ends.
    _file: BackingFile,
    /// The gathered bvecs the bios point into (empty for one bio), held
    /// until the I/O ends.
    _bvecs: KVec<bindings::bio_vec>,
    write: bool,
}

/// The per-request data of the tag set (`cmd_size`): the kiocb of a direct
/// I/O and what it needs until it ends, as `struct loop_cmd`.
///
/// # Invariants
///
/// From the submission of the kiocb in [`Request::submit_direct`] to the
/// drop of the last reference in [`Cmd::put`], every field is initialised,
/// `io` included, and `refs` counts the submitter and the completion; `iocb` is first, so a pointer
/// to it is a pointer to the command.
#[repr(C)]
struct Cmd {
    iocb: bindings::kiocb,
    refs: AtomicU32,
    /// The result: bytes done, or a negative errno.
    ret: AtomicIsize,
    /// Submitted with `IOCB_NOWAIT`: anything but the whole request done
    /// goes to the driver's fallback.
    nowait: bool,
    /// Fault injection: the result is taken as `-EAGAIN`.
    fail_late: bool,
    io: MaybeUninit<InFlight>,
    /// The work item of [`Request::queue_work`].
    work: bindings::work_struct,
    /// The page wait of [`Request::read_cached`], queued on a page while
    /// the request waits for it.
    page_wait: bindings::wait_page_queue,
    /// The link of [`RequestList`].
    link: bindings::llist_node,
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

/// The work function of a request handed to [`Request::queue_work`].
///
/// # Safety
///
/// Called by the workqueue for the `work` of the command of a request of a
/// disk made by [`Disk::new`] for `T`, queued by `queue_work`.
unsafe extern "C" fn run_work<T: DiskDriver>(work: *mut bindings::work_struct) {
    // SAFETY: `work` is in a command, which is the PDU of a request that
    // `queue_work` gave up to this work item, which runs once per queueing.
    let (this, rq) = unsafe {
        let cmd: *mut Cmd = kernel::container_of!(work, Cmd, work);
        Request::take_back::<T>(bindings::blk_mq_rq_from_pdu(cmd.cast()))
    };
    T::run_queued(this, rq);
}

/// A workqueue of the module's own for [`Request::queue_work`]: unbound,
/// with a rescuer thread (`WQ_MEM_RECLAIM`), since requests of a loop
/// device are in the writeback path of what sits on it. Dropping it waits
/// for every work item on it (`destroy_workqueue`): the module's code is
/// not left running after it.
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
    /// Allocates the workqueue (`loop_io`).
    pub fn new() -> Result<Self> {
        // SAFETY: No preconditions.
        let ptr = unsafe { rloop_alloc_io_workqueue() };
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

    /// Waits for every work item queued so far to have run
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

/// A lock-free list of requests owned by the driver (`llist`), for one
/// worker to take in a batch: any context adds, and whoever takes the list
/// gets every request on it, in the order they were added. Each request
/// links through its command, so adding never allocates.
///
/// # Invariants
///
/// Every node on `head` is the `link` of the command of a request of a tag
/// set made by [`TagSet::new`], which the list owns.
pub struct RequestList {
    head: Opaque<bindings::llist_head>,
}

// SAFETY: The list owns its requests, which may be ended from any thread
// (`Request` is `Send`); `llist` operations are atomic.
unsafe impl Send for RequestList {}
// SAFETY: `push` and `take_all` are safe from any number of threads at
// once: `llist_add` and `llist_del_all` are atomic exchanges.
unsafe impl Sync for RequestList {}

impl RequestList {
    /// An empty list.
    pub fn new() -> Self {
        // INVARIANT: An all-zeroes `llist_head` is empty.
        Self {
            head: Opaque::zeroed(),
        }
    }

    /// Adds `rq` at the end; returns whether the list was empty, in which
    /// case the caller must see that someone takes it. Any context.
    pub fn push(&self, rq: Request) -> bool {
        let rq = ManuallyDrop::new(rq);
        // SAFETY: The request is live and ours (type invariant of
        // `Request`), of a tag set of `TagSet::new`, so its PDU is a
        // command; its link is not on any list, since a request is pushed
        // only while the driver owns it. INVARIANT: the list now owns it.
        unsafe { rloop_llist_add(&raw mut (*Cmd::of(rq.raw())).link, self.head.get()) }
    }

    /// Takes every request on the list, oldest first. Any context.
    pub fn take_all(&self) -> RequestBatch {
        // SAFETY: The head is live. The nodes taken are no longer on the
        // list, and so are ours alone; reversed, the oldest comes first.
        let first = unsafe { bindings::llist_reverse_order(rloop_llist_del_all(self.head.get())) };
        RequestBatch { next: first }
    }
}

impl Default for RequestList {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RequestList {
    fn drop(&mut self) {
        // Requests left on the list end with an I/O error (`Request`'s
        // drop) rather than hang.
        for rq in self.take_all() {
            drop(rq);
        }
    }
}

/// The requests taken off a [`RequestList`], oldest first. Those not
/// iterated end with an I/O error when it is dropped.
///
/// # Invariants
///
/// `next` is null or the first of a chain of links of commands of
/// requests that the batch owns.
pub struct RequestBatch {
    next: *mut bindings::llist_node,
}

// SAFETY: The batch owns its requests, which may be ended from any thread.
unsafe impl Send for RequestBatch {}

impl Iterator for RequestBatch {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        let node = NonNull::new(self.next)?;
        // SAFETY: By the type invariant the node is the link of a command
        // of a request the batch owns; its `next` is read before the
        // request is given out (and may be pushed again).
        let rq = unsafe {
            self.next = (*node.as_ptr()).next;
            let cmd: *mut Cmd = kernel::container_of!(node.as_ptr(), Cmd, link);
            bindings::blk_mq_rq_from_pdu(cmd.cast())
        };
        // INVARIANT: The batch owned the request and gives it up.
        Some(Request {
            // SAFETY: A PDU's request is not null.
            ptr: unsafe { NonNull::new_unchecked(rq) },
        })
    }
}

impl Drop for RequestBatch {
    fn drop(&mut self) {
        for rq in self.by_ref() {
            drop(rq);
        }
    }
}

impl Cmd {
    /// The command of `rq`.
    ///
    /// # Safety
    ///
    /// `rq` belongs to a tag set made by [`TagSet::new`], whose `cmd_size`
    /// is that of `Cmd`.
    unsafe fn of(rq: *mut bindings::request) -> *mut Cmd {
        // SAFETY: The PDU follows the request, `cmd_size` bytes, aligned
        // for the request and so for `Cmd`.
        unsafe { bindings::blk_mq_rq_to_pdu(rq).cast() }
    }

    /// `ki_complete`: records the result and drops the completion's
    /// reference. May run in interrupt context.
    ///
    /// # Safety
    ///
    /// `iocb` is the kiocb of a command in flight, and the caller holds the
    /// completion's reference.
    unsafe extern "C" fn ki_complete<T: DiskDriver>(iocb: *mut bindings::kiocb, ret: c_long) {
        let cmd = iocb.cast::<Cmd>();
        // SAFETY: By the type invariant `iocb` is the start of the command,
        // which is in flight.
        unsafe {
            let ret = if (*cmd).fail_late {
                -(bindings::EAGAIN as c_long)
            } else {
                ret
            };
            (*cmd).ret.store(ret, Ordering::Relaxed);
            Cmd::put::<T>(cmd);
        }
    }

    /// Drops a reference; the last one releases the file, the bvecs and
    /// the write freeze protection, and completes the request, as
    /// `lo_rw_aio_do_completion()`; or, for a `NOWAIT` attempt that did
    /// not do the whole request, gives it back to `T::nowait_fallback`.
    /// May run in interrupt context.
    ///
    /// # Safety
    ///
    /// `cmd` is in flight and the caller holds one of its references, which
    /// it gives up. The request's queue belongs to a disk made by
    /// [`Disk::new`] for `T`.
    unsafe fn put<T: DiskDriver>(cmd: *mut Cmd) {
        // SAFETY: The command is in flight, so `refs` is initialised.
        // Release orders this reference holder's writes (the result) before
        // the last holder's reads, which Acquire.
        if unsafe { (*cmd).refs.fetch_sub(1, Ordering::AcqRel) } != 1 {
            return;
        }
        // SAFETY: This was the last reference: nothing else uses the command,
        // `io` is initialised and is read out once. The request is still
        // owned by the driver and goes to blk-mq's completion exactly once.
        unsafe {
            let io = (*cmd).io.assume_init_read();
            if io.write {
                rloop_kiocb_end_write(&raw mut (*cmd).iocb);
            }
            drop(io);
            let rq = bindings::blk_mq_rq_from_pdu(cmd.cast());
            let ret = (*cmd).ret.load(Ordering::Relaxed);
            if !(*cmd).nowait || ret == rloop_rq_bytes(rq) as isize {
                bindings::blk_mq_complete_request(rq);
                return;
            }
            // The request was given up by `submit_direct` and goes back to
            // the driver once, here; it is not completed.
            let (this, rq) = Request::take_back::<T>(rq);
            T::nowait_fallback(this, rq);
        }
    }
}

/// The mode a block device was opened with (`blk_mode_t`).
#[derive(Clone, Copy, Debug)]
pub struct OpenMode(bindings::blk_mode_t);

impl OpenMode {
    /// Opened for writing (`BLK_OPEN_WRITE`).
    pub fn write(self) -> bool {
        // SAFETY: A pure flag test.
        unsafe { rloop_mode_write(self.0) }
    }

    /// Opened exclusively (`BLK_OPEN_EXCL`).
    pub fn exclusive(self) -> bool {
        // SAFETY: A pure flag test.
        unsafe { rloop_mode_excl(self.0) }
    }
}

/// The block device an ioctl came through.
///
/// # Invariants
///
/// `self.0` is a live, open `struct block_device` for the reference's life.
#[repr(transparent)]
pub struct BdevRef(Opaque<bindings::block_device>);

/// The holder of the loop driver's temporary claims.
static CLAIM_HOLDER: u8 = 0;

impl BdevRef {
    /// Claims the device for exclusive use until the guard goes, as
    /// `bd_prepare_to_claim`/`bd_abort_claiming` around a reconfiguration:
    /// fails with `EBUSY` while someone else holds it exclusively.
    pub fn claim(&self) -> Result<BdevClaim<'_>> {
        // SAFETY: The bdev is live; the holder is a static address.
        to_result(unsafe {
            bindings::bd_prepare_to_claim(
                self.0.get(),
                (&raw const CLAIM_HOLDER).cast_mut().cast(),
                core::ptr::null(),
            )
        })?;
        Ok(BdevClaim { bdev: self })
    }
}

/// A claim on a block device, dropped by `bd_abort_claiming`.
pub struct BdevClaim<'a> {
    bdev: &'a BdevRef,
}

impl Drop for BdevClaim<'_> {
    fn drop(&mut self) {
        // SAFETY: `claim` prepared this claim with the same holder.
        unsafe {
            bindings::bd_abort_claiming(
                self.bdev.0.get(),
                (&raw const CLAIM_HOLDER).cast_mut().cast(),
            )
        };
    }
}

/// A disk, as seen from its callbacks.
///
/// # Invariants
///
/// `self.0` is a live `struct gendisk` for the lifetime of the reference.
#[repr(transparent)]
pub struct DiskRef(Opaque<bindings::gendisk>);

impl DiskRef {
    /// # Safety
    ///
    /// `ptr` must point to a live `struct gendisk` for `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::gendisk) -> &'a Self {
        // SAFETY: `DiskRef` is a transparent wrapper and the caller guarantees
        // the pointee lives long enough.
        unsafe { &*ptr.cast() }
    }

    fn as_ptr(&self) -> *mut bindings::gendisk {
        self.0.get()
    }

    /// The number of openers of the whole disk (`disk_openers`).
    pub fn openers(&self) -> u32 {
        // SAFETY: By the type invariant the disk is live.
        unsafe { rloop_disk_openers(self.as_ptr()) }
    }

    /// The device number of the whole disk.
    pub fn devt(&self) -> u32 {
        // SAFETY: By the type invariant the disk is live.
        let (major, first) = unsafe { ((*self.as_ptr()).major, (*self.as_ptr()).first_minor) };
        ((major as u32) << bindings::MINORBITS) | first as u32
    }

    fn queue(&self) -> *mut bindings::request_queue {
        // SAFETY: A live disk has a queue.
        unsafe { (*self.as_ptr()).queue }
    }

    /// Sets the capacity in 512-byte sectors and tells user space: a resize
    /// uevent, or a change uevent when the size did not change, as
    /// `loop_set_size()` does.
    pub fn set_capacity(&self, sectors: u64) {
        // SAFETY: By the type invariant the disk is live.
        unsafe {
            if !bindings::set_capacity_and_notify(self.as_ptr(), sectors) {
                rloop_disk_uevent_change(self.as_ptr());
            }
        }
    }

    /// Sends a `KOBJ_CHANGE` uevent.
    pub fn uevent_change(&self) {
        // SAFETY: By the type invariant the disk is live.
        unsafe { rloop_disk_uevent_change(self.as_ptr()) };
    }

    /// Holds back (or lets through) the disk's uevents.
    pub fn suppress_uevents(&self, suppress: bool) {
        // SAFETY: By the type invariant the disk is live.
        unsafe { rloop_disk_suppress_uevents(self.as_ptr(), suppress) };
    }

    /// Marks the medium as changed (`disk_force_media_change`).
    pub fn force_media_change(&self) {
        // SAFETY: By the type invariant the disk is live.
        unsafe { bindings::disk_force_media_change(self.as_ptr()) };
    }

    /// Sets the disk read-only or writable.
    pub fn set_read_only(&self, ro: bool) {
        // SAFETY: By the type invariant the disk is live.
        unsafe { bindings::set_disk_ro(self.as_ptr(), ro) };
    }

    /// Drops the disk's cached data and size (`invalidate_disk`).
    pub fn invalidate(&self) {
        // SAFETY: By the type invariant the disk is live.
        unsafe { bindings::invalidate_disk(self.as_ptr()) };
    }

    /// Writes back and drops the whole-disk page cache, before a change of
    /// offset or block size.
    pub fn sync_and_invalidate(&self) {
        // SAFETY: By the type invariant the disk and its part0 are live.
        unsafe {
            let bdev = (*self.as_ptr()).part0;
            bindings::sync_blockdev(bdev);
            bindings::invalidate_bdev(bdev);
        }
    }

    /// Adds the `loop/` sysfs directory.
    pub fn sysfs_add(&self) -> Result {
        // SAFETY: By the type invariant the disk is live.
        to_result(unsafe { rloop_disk_sysfs_add(self.as_ptr()) })
    }

    /// Removes the `loop/` sysfs directory; waits for reads in progress, so
    /// call it with no lock that a read takes.
    pub fn sysfs_remove(&self) {
        // SAFETY: By the type invariant the disk is live.
        unsafe { rloop_disk_sysfs_remove(self.as_ptr()) };
    }

    /// Allows or suppresses partition scanning.
    pub fn set_part_scan(&self, enable: bool) {
        // SAFETY: By the type invariant the disk is live.
        unsafe { rloop_disk_set_part_scan(self.as_ptr(), enable) };
    }

    /// Rescans partitions (`bdev_disk_changed`); `open_mutex_held` is true
    /// in the release callback, which runs under the disk's `open_mutex`.
    pub fn rescan_partitions(&self, open_mutex_held: bool) -> Result {
        // SAFETY: By the type invariant the disk is live; the helper takes
        // `open_mutex` unless the caller holds it.
        to_result(unsafe { rloop_disk_rescan_partitions(self.as_ptr(), open_mutex_held) })
    }

    /// The current logical block size.
    pub fn logical_block_size(&self) -> u32 {
        // SAFETY: The queue of a live disk is valid.
        unsafe { (*self.queue()).limits.logical_block_size }
    }

    /// Freezes the queue: every request in flight ends, and no new one
    /// starts until the guard goes.
    pub fn freeze(&self) -> QueueFreeze<'_> {
        // SAFETY: The queue of a live disk is valid.
        let memflags = unsafe { rloop_queue_freeze(self.queue()) };
        QueueFreeze {
            disk: self,
            memflags,
        }
    }

    /// Starts a change of the queue limits: the guard holds the limits lock
    /// and a copy to edit, until [`LimitsUpdate::commit`] validates and
    /// applies it or the guard is dropped. Take it before freezing the
    /// queue, in the block layer's lock order.
    pub fn start_limits_update(&self) -> LimitsUpdate<'_> {
        let mut lim = Limits(pin_init::zeroed());
        // SAFETY: The queue is valid; `start_update` takes `limits_lock`,
        // which the guard releases by commit or cancel.
        unsafe { rloop_limits_start_update(self.queue(), &mut lim.0) };
        LimitsUpdate {
            disk: self,
            lim: ManuallyDrop::new(lim),
        }
    }

    /// Changes the queue limits: `f` edits a copy taken under the limits
    /// lock, and the result is validated and committed.
    pub fn update_limits(&self, f: impl FnOnce(&mut Limits)) -> Result {
        let mut update = self.start_limits_update();
        f(&mut update);
        update.commit()
    }
}

/// Queue limits being changed, with the queue's limits lock held.
///
/// # Invariants
///
/// `lim` came from `queue_limits_start_update` on `disk`'s queue, whose
/// `limits_lock` is held until commit or drop.
pub struct LimitsUpdate<'a> {
    disk: &'a DiskRef,
    lim: ManuallyDrop<Limits>,
}

impl LimitsUpdate<'_> {
    /// Validates and applies the limits (`queue_limits_commit_update`); the
    /// lock is released either way.
    pub fn commit(self) -> Result {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: By the type invariant the lock is held; commit releases
        // it, and `this` is not dropped, so it is not released twice.
        to_result(unsafe {
            bindings::queue_limits_commit_update(this.disk.queue(), &mut this.lim.0)
        })
    }
}

impl core::ops::Deref for LimitsUpdate<'_> {
    type Target = Limits;
    fn deref(&self) -> &Limits {
        &self.lim
    }
}

impl core::ops::DerefMut for LimitsUpdate<'_> {
    fn deref_mut(&mut self) -> &mut Limits {
        &mut self.lim
    }
}

impl Drop for LimitsUpdate<'_> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the lock is held and not committed.
        unsafe { rloop_limits_cancel_update(self.disk.queue()) };
    }
}

/// The attributes of a disk's `loop/` sysfs directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysfsAttr {
    /// `backing_file`.
    BackingFile,
    /// `offset`.
    Offset,
    /// `sizelimit`.
    Sizelimit,
    /// `autoclear`.
    Autoclear,
    /// `partscan`.
    Partscan,
    /// `dio`.
    Dio,
    /// `nowait`, the one that can be written: whether direct I/O is first
    /// tried from `queue_rq` with `IOCB_NOWAIT` (an rloop extension).
    Nowait,
}

impl SysfsAttr {
    fn from_index(which: c_int) -> Option<Self> {
        Some(match which {
            0 => Self::BackingFile,
            1 => Self::Offset,
            2 => Self::Sizelimit,
            3 => Self::Autoclear,
            4 => Self::Partscan,
            5 => Self::Dio,
            6 => Self::Nowait,
            _ => return None,
        })
    }
}

/// What a `loop/` attribute shows.
pub enum SysfsValue<'a> {
    /// The path of a file, as `file_path()` gives it.
    Path(&'a super::file::BackingFile),
    /// A number.
    Number(u64),
}

/// A driver whose disks have the `loop/` sysfs directory.
pub trait DiskSysfs: DiskDriver {
    /// The value of `attr`, or an error for the read.
    fn show(
        this: ArcBorrow<'_, Self>,
        attr: SysfsAttr,
        f: &mut dyn FnMut(SysfsValue<'_>) -> isize,
    ) -> Result<isize>;

    /// A write of `input` to `attr`, which sysfs only allows for the
    /// writable ones.
    fn store(this: ArcBorrow<'_, Self>, attr: SysfsAttr, input: &[u8]) -> Result;
}

/// Sends every `loop/` attribute read to `T`. Called once at module init.
pub fn sysfs_register<T: DiskSysfs>() {
    // SAFETY: The callback stays valid for the module's life, and the
    // attributes exist only on disks of this module.
    unsafe {
        rloop_sysfs_set_show(sysfs_show::<T>);
        rloop_sysfs_set_store(sysfs_store::<T>);
    }
}

/// # Safety
///
/// Called by sysfs for a writable attribute of a disk made by
/// [`Disk::new`] for `T`, with `count` bytes at `buf`.
unsafe extern "C" fn sysfs_store<T: DiskSysfs>(
    data: *mut c_void,
    which: c_int,
    buf: *const c_char,
    count: usize,
) -> isize {
    let Some(attr) = SysfsAttr::from_index(which) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: The attribute's disk is live while sysfs calls its store,
    // and its private data is ours.
    let this = unsafe { Callbacks::<T>::borrow(data) };
    // SAFETY: sysfs passes `count` readable bytes.
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    match T::store(this, attr, input) {
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// Called by sysfs for an attribute of a disk made by [`Disk::new`] for
/// `T`, with a `PAGE_SIZE` buffer.
unsafe extern "C" fn sysfs_show<T: DiskSysfs>(
    data: *mut c_void,
    which: c_int,
    buf: *mut c_char,
) -> isize {
    let Some(attr) = SysfsAttr::from_index(which) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: The attribute's disk is live while sysfs calls its show, and
    // its private data is ours.
    let this = unsafe { Callbacks::<T>::borrow(data) };
    let mut emit = |v: SysfsValue<'_>| -> isize {
        match v {
            // SAFETY: `buf` is a sysfs page; the file is valid.
            SysfsValue::Path(file) => unsafe { rloop_file_path_show(file.raw(), buf) },
            SysfsValue::Number(n) => {
                // SAFETY: `buf` is a sysfs page, `PAGE_SIZE` bytes.
                let page = unsafe {
                    core::slice::from_raw_parts_mut(buf.cast::<u8>(), bindings::PAGE_SIZE)
                };
                let mut w = kernel::str::Formatter::new(page);
                let _ = writeln!(w, "{n}");
                w.bytes_written() as isize
            }
        }
    };
    match T::show(this, attr, &mut emit) {
        Ok(n) => n,
        Err(e) => e.to_errno() as isize,
    }
}

/// A frozen queue; unfrozen on drop.
pub struct QueueFreeze<'a> {
    disk: &'a DiskRef,
    memflags: c_uint,
}

impl Drop for QueueFreeze<'_> {
    fn drop(&mut self) {
        // SAFETY: The queue was frozen by `DiskRef::freeze` with `memflags`.
        unsafe { rloop_queue_unfreeze(self.disk.queue(), self.memflags) };
    }
}

/// Queue limits being updated.
pub struct Limits(bindings::queue_limits);

impl Limits {
    /// Logical, physical and minimum I/O size.
    pub fn set_block_size(&mut self, bsize: u32) {
        self.0.logical_block_size = bsize;
        self.0.physical_block_size = bsize;
        self.0.io_min = bsize;
    }

    /// Whether the device has a volatile write cache (flushes reach the
    /// driver) and whether it is rotational.
    pub fn set_features(&mut self, write_cache: bool, rotational: bool) {
        // SAFETY: `self.0` is a valid `queue_limits`.
        unsafe { rloop_limits_set_features(&mut self.0, write_cache, rotational) };
    }

    /// Discard and write-zeroes limits; 0 sectors turns both off.
    pub fn set_discard(&mut self, max_sectors: u32, granularity: u32) {
        self.0.max_hw_discard_sectors = max_sectors;
        self.0.max_write_zeroes_sectors = max_sectors;
        self.0.discard_granularity = if max_sectors != 0 { granularity } else { 0 };
    }

    /// The DMA alignment mask.
    pub fn set_dma_alignment(&mut self, mask: u32) {
        self.0.dma_alignment = mask;
    }
}

/// What a driver implements to back a [`Disk`].
///
/// Every callback gets the device object the disk was created with.
pub trait DiskDriver: Send + Sync + Sized + 'static {
    /// The module that owns the disks, for `block_device_operations.owner`.
    type Owner: ModuleMetadata;

    /// Called on every open of the disk or one of its partitions.
    fn open(this: ArcBorrow<'_, Self>, disk: &DiskRef) -> Result;

    /// Called on every close; `disk.openers()` tells whether it was the last.
    fn release(this: ArcBorrow<'_, Self>, disk: &DiskRef);

    /// A block device ioctl the block layer did not handle itself.
    fn ioctl(
        this: ArcBorrow<'_, Self>,
        disk: &DiskRef,
        bdev: &BdevRef,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
    ) -> Result<i32>;

    /// A request from the queue, already started, now owned by the driver.
    fn queue_rq(this: ArcBorrow<'_, Self>, rq: Request);

    /// A request given to [`Request::submit_direct`] is done: `result` is
    /// the number of bytes transferred, or the error; `nowait` tells that
    /// it was submitted with `IOCB_NOWAIT` (and so did the whole request).
    /// Runs in the completion context of blk-mq (often a softirq): it must
    /// not sleep.
    fn direct_done(this: ArcBorrow<'_, Self>, rq: Request, result: Result<usize>, nowait: bool);

    /// A request given to [`Request::submit_direct`] with `IOCB_NOWAIT`
    /// did not do all its I/O (`EAGAIN`, most often), and nothing of the
    /// attempt is held any more: the driver must run it again, blocking.
    /// May run in any context, hard interrupts included: it must not sleep
    /// and must take only interrupt-safe locks.
    fn nowait_fallback(this: ArcBorrow<'_, Self>, rq: Request);

    /// A request given to [`Request::read_cached`] that waited for a page
    /// is ready to read again: the page is unlocked. Runs in the context
    /// that unlocked it (often the backing device's completion interrupt),
    /// under the page's waitqueue lock: it must not sleep and must take
    /// only interrupt-safe locks.
    fn page_ready(this: ArcBorrow<'_, Self>, rq: Request);

    /// A request given to [`Request::queue_work`], in a worker: it may
    /// sleep. `this` is borrowed from the request's queue and is alive
    /// only until `rq` ends: the device may go right after.
    fn run_queued(this: ArcBorrow<'_, Self>, rq: Request);
}

struct Callbacks<T: DiskDriver>(PhantomData<T>);

impl<T: DiskDriver> Callbacks<T> {
    const MQ_OPS: bindings::blk_mq_ops = bindings::blk_mq_ops {
        queue_rq: Some(Self::queue_rq),
        complete: Some(Self::complete),
        ..pin_init::zeroed()
    };

    const FOPS: bindings::block_device_operations = bindings::block_device_operations {
        open: Some(Self::open),
        release: Some(Self::release),
        ioctl: Some(Self::ioctl),
        compat_ioctl: Some(Self::ioctl),
        free_disk: Some(Self::free_disk),
        owner: T::Owner::THIS_MODULE.as_ptr(),
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// `data` must be the `private_data`/`queuedata` of a disk made by
    /// [`Disk::new`] for `T`, whose `free_disk` has not run yet.
    unsafe fn borrow<'a>(data: *mut c_void) -> ArcBorrow<'a, T> {
        // SAFETY: `Disk::new` stored `Arc::into_foreign` here, and it is only
        // converted back in `free_disk`, after every other callback.
        unsafe { <Arc<T> as ForeignOwnable>::borrow(data) }
    }

    /// # Safety
    ///
    /// Called by blk-mq for a queue of a disk made by [`Disk::new`].
    unsafe extern "C" fn queue_rq(
        hctx: *mut bindings::blk_mq_hw_ctx,
        bd: *const bindings::blk_mq_queue_data,
    ) -> bindings::blk_status_t {
        // SAFETY: blk-mq passes a valid `bd` whose request the driver owns
        // until it is ended.
        let rq = unsafe { NonNull::new_unchecked((*bd).rq) };
        // SAFETY: `rq` is the live request blk-mq just handed over.
        unsafe { bindings::blk_mq_start_request(rq.as_ptr()) };
        // SAFETY: `hctx` and its queue are valid in `queue_rq`; the queue data
        // is what `Disk::new` set, alive until `free_disk`.
        let this = unsafe { Self::borrow((*(*hctx).queue).queuedata) };
        // INVARIANT: the request is started and now owned by the driver.
        T::queue_rq(this, Request { ptr: rq });
        BlkStatus::OK.0
    }

    /// `blk_mq_ops.complete`, which blk-mq calls for the requests
    /// [`Cmd::put`] hands to `blk_mq_complete_request`: only direct I/O.
    ///
    /// # Safety
    ///
    /// Called by blk-mq, once, for such a request of a disk made by
    /// [`Disk::new`].
    unsafe extern "C" fn complete(rq: *mut bindings::request) {
        // SAFETY: The request is live and its command was filled in by
        // `submit_direct`; the queue data is alive until `free_disk`, which
        // cannot come while a request is in flight.
        let (ret, nowait, this) = unsafe {
            let cmd = Cmd::of(rq);
            let ret = (*cmd).ret.load(Ordering::Relaxed);
            (ret, (*cmd).nowait, Self::borrow((*(*rq).q).queuedata))
        };
        let result = if ret < 0 {
            Err(Error::from_errno(ret as c_int))
        } else {
            Ok(ret as usize)
        };
        // SAFETY: blk-mq passes a valid, so non-null, request.
        let ptr = unsafe { NonNull::new_unchecked(rq) };
        // INVARIANT: `submit_direct` gave up the request, and blk-mq hands it
        // back once: it is started, owned by the driver, not ended.
        let rq = Request { ptr };
        T::direct_done(this, rq, result, nowait);
    }

    /// # Safety
    ///
    /// Called by the block layer for a disk made by [`Disk::new`].
    unsafe extern "C" fn open(disk: *mut bindings::gendisk, _mode: bindings::blk_mode_t) -> c_int {
        // SAFETY: The disk is live during open and its private data is ours.
        let (this, disk) = unsafe { (Self::borrow((*disk).private_data), DiskRef::from_raw(disk)) };
        match T::open(this, disk) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the block layer for a disk made by [`Disk::new`].
    unsafe extern "C" fn release(disk: *mut bindings::gendisk) {
        // SAFETY: The disk is live during release and its private data is ours.
        let (this, disk) = unsafe { (Self::borrow((*disk).private_data), DiskRef::from_raw(disk)) };
        T::release(this, disk);
    }

    /// # Safety
    ///
    /// Called by the block layer for an open block device of a disk made by
    /// [`Disk::new`].
    unsafe extern "C" fn ioctl(
        bdev: *mut bindings::block_device,
        mode: bindings::blk_mode_t,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_int {
        // SAFETY: An open block device has a live disk whose private data is ours.
        let (this, disk) = unsafe {
            let disk = (*bdev).bd_disk;
            (Self::borrow((*disk).private_data), DiskRef::from_raw(disk))
        };
        // SAFETY: The bdev is open for the duration of the ioctl.
        let bdev = unsafe { &*bdev.cast::<BdevRef>() };
        match T::ioctl(this, disk, bdev, OpenMode(mode), cmd, arg) {
            Ok(v) => v,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called once by the block layer when the last reference to an added
    /// disk made by [`Disk::new`] goes.
    unsafe extern "C" fn free_disk(disk: *mut bindings::gendisk) {
        // SAFETY: This is the one place that takes back the reference
        // `Disk::new` stored; no callback runs after `free_disk`.
        drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign((*disk).private_data) });
    }
}

/// A blk-mq tag set for disks driven by `T`.
///
/// # Invariants
///
/// `inner` is a tag set initialised by `blk_mq_alloc_tag_set`.
#[pin_data(PinnedDrop)]
pub struct TagSet<T: DiskDriver> {
    #[pin]
    inner: Opaque<bindings::blk_mq_tag_set>,
    _p: PhantomData<T>,
}

// SAFETY: The tag set is only changed by the block layer under its own locks.
unsafe impl<T: DiskDriver> Send for TagSet<T> {}
// SAFETY: See above; `&TagSet` exposes no interior mutability.
unsafe impl<T: DiskDriver> Sync for TagSet<T> {}

/// `BLK_MQ_F_*` flags of a tag set.
pub mod tag_set_flags {
    use kernel::bindings;
    /// The queue stacks on other block devices (`BLK_MQ_F_STACKING`).
    pub const STACKING: u32 = bindings::BLK_MQ_F_STACKING;
    /// No I/O scheduler by default (`BLK_MQ_F_NO_SCHED_BY_DEFAULT`).
    pub const NO_SCHED_BY_DEFAULT: u32 = bindings::BLK_MQ_F_NO_SCHED_BY_DEFAULT;
    /// `queue_rq` may sleep (`BLK_MQ_F_BLOCKING`): blk-mq dispatches under
    /// SRCU, from a context that can sleep.
    pub const BLOCKING: u32 = bindings::BLK_MQ_F_BLOCKING;
}

impl<T: DiskDriver> TagSet<T> {
    /// Allocates a tag set with `nr_hw_queues` queues of `queue_depth` tags.
    pub fn new(nr_hw_queues: u32, queue_depth: u32, flags: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(move |slot: *mut bindings::blk_mq_tag_set| {
                // SAFETY: `slot` is valid for writes and pinned.
                unsafe {
                    slot.write(bindings::blk_mq_tag_set {
                        ops: &Callbacks::<T>::MQ_OPS,
                        nr_hw_queues,
                        queue_depth,
                        numa_node: bindings::NUMA_NO_NODE,
                        cmd_size: size_of::<Cmd>() as c_uint,
                        flags,
                        nr_maps: 1,
                        ..pin_init::zeroed()
                    })
                };
                // SAFETY: `slot` holds a filled-in tag set; on failure nothing
                // is left to free.
                to_result(unsafe { bindings::blk_mq_alloc_tag_set(slot) })
            }),
            _p: PhantomData,
        })
    }
}

#[pinned_drop]
impl<T: DiskDriver> PinnedDrop for TagSet<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the tag set was allocated. The owner
        // drops it only after every disk using it was released.
        unsafe { bindings::blk_mq_free_tag_set(self.inner.get()) };
    }
}

/// Where a new disk sits in the device number space, and what it is called.
pub struct DiskParams<'a> {
    /// Block major.
    pub major: u32,
    /// First minor.
    pub first_minor: u32,
    /// Number of minors, partitions included.
    pub minors: u32,
    /// Whether partitions are scanned.
    pub part_scan: bool,
    /// Name under `/dev` and `/sys/block`.
    pub name: core::fmt::Arguments<'a>,
    /// `queue_limits.max_hw_sectors`.
    pub max_hw_sectors: u32,
    /// Whether writeback throttling may be enabled by default.
    pub writeback_throttling: bool,
}

/// A disk added to the system, whose callbacks go to a `T`.
///
/// Dropping it deletes the disk (`del_gendisk`) and puts the reference made
/// at allocation. The disk's own reference to its `T` goes in `free_disk`,
/// once the last opener is gone.
///
/// # Invariants
///
/// `gendisk` was allocated by `__blk_mq_alloc_disk` on a tag set that
/// outlives it, added with `device_add_disk`, and its private and queue data
/// hold one `Arc<T>` reference made by `into_foreign`.
pub struct Disk<T: DiskDriver> {
    gendisk: NonNull<bindings::gendisk>,
    _p: PhantomData<Arc<T>>,
}

// SAFETY: The gendisk may be deleted and put from any thread.
unsafe impl<T: DiskDriver> Send for Disk<T> {}
// SAFETY: `&Disk` methods only call thread-safe block layer functions.
unsafe impl<T: DiskDriver> Sync for Disk<T> {}

impl<T: DiskDriver> Disk<T> {
    /// Allocates a disk on `tag_set` and adds it, with `data` as the object
    /// every callback receives.
    ///
    /// The caller keeps `tag_set` alive until `data`'s last reference is gone,
    /// which is after `free_disk`: putting the tag set inside `T` does that.
    /// A `TagSet` is only ever made in place by its `PinInit`, so it does not
    /// move while borrowed here.
    pub fn new(tag_set: &TagSet<T>, data: Arc<T>, params: DiskParams<'_>) -> Result<Self> {
        let mut lim: bindings::queue_limits = pin_init::zeroed();
        lim.max_hw_sectors = params.max_hw_sectors;
        let foreign = data.into_foreign();
        // SAFETY: The tag set is initialised; `lim` and the lock class are
        // valid for the call.
        let gendisk = from_err_ptr(unsafe {
            bindings::__blk_mq_alloc_disk(
                tag_set.inner.get(),
                &mut lim,
                foreign,
                kernel::static_lock_class!().as_ptr(),
            )
        });
        let gendisk = match gendisk {
            Ok(g) => g,
            Err(e) => {
                // SAFETY: Nothing else saw `foreign`; take the reference back.
                drop(unsafe { <Arc<T> as ForeignOwnable>::from_foreign(foreign) });
                return Err(e);
            }
        };
        // SAFETY: `gendisk` is allocated and not yet added: we own it.
        let setup = unsafe {
            let g = &mut *gendisk;
            g.major = params.major as c_int;
            g.first_minor = params.first_minor as c_int;
            g.minors = params.minors as c_int;
            g.fops = &Callbacks::<T>::FOPS;
            g.private_data = foreign;
            g.events = bindings::DISK_EVENT_MEDIA_CHANGE as u16;
            g.event_flags = bindings::DISK_EVENT_FLAG_UEVENT as u16;
            rloop_disk_set_part_scan(gendisk, params.part_scan);
            if !params.writeback_throttling {
                rloop_queue_disable_wbt_default(g.queue);
            }
            NullTerminatedFormatter::new(&mut g.disk_name)
                .ok_or(EINVAL)
                .and_then(|mut w| w.write_fmt(params.name).map_err(|_| EINVAL))
        };
        let added = setup.and_then(|()| {
            // SAFETY: `gendisk` is allocated and its fields set up.
            to_result(unsafe {
                bindings::device_add_disk(core::ptr::null_mut(), gendisk, core::ptr::null_mut())
            })
        });
        if let Err(e) = added {
            // SAFETY: The disk was never added, so `put_disk` frees it without
            // calling `free_disk`; the data reference is ours to take back.
            unsafe {
                bindings::put_disk(gendisk);
                drop(<Arc<T> as ForeignOwnable>::from_foreign(foreign));
            }
            return Err(e);
        }
        // INVARIANT: allocated on `tag_set`, added, data stored as above.
        Ok(Self {
            // SAFETY: `from_err_ptr` returned a valid, non-null pointer.
            gendisk: unsafe { NonNull::new_unchecked(gendisk) },
            _p: PhantomData,
        })
    }

    /// The disk as its callbacks see it.
    pub fn disk_ref(&self) -> &DiskRef {
        // SAFETY: By the type invariant the disk is live while `self` is.
        unsafe { DiskRef::from_raw(self.gendisk.as_ptr()) }
    }
}

impl<T: DiskDriver> Drop for Disk<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the disk was added and this is the
        // one owner of the allocation reference.
        unsafe {
            bindings::del_gendisk(self.gendisk.as_ptr());
            bindings::put_disk(self.gendisk.as_ptr());
        }
    }
}

/// The driver object of a disk of this module's that `file` is open on,
/// if it is one: how the loop driver finds a loop device used as a backing
/// file. A module has one `DiskDriver` type, so the owner identifies it.
pub fn driver_behind<T: DiskDriver>(file: &super::file::BackingFile) -> Option<Arc<T>> {
    if !matches!(file.kind(), super::file::FileKind::Block(_)) {
        return None;
    }
    // SAFETY: `file` is open on a block device, so `file_bdev` gives its
    // live bdev, and that a live disk.
    let disk = unsafe { (*bindings::file_bdev(file.raw())).bd_disk };
    // SAFETY: The disk is live; its fops are static.
    let owner = unsafe { (*(*disk).fops).owner };
    if owner != T::Owner::THIS_MODULE.as_ptr() {
        return None;
    }
    // SAFETY: A disk of this module's was made by `Disk::new` for `T`; the
    // open file keeps it, and so its private data, alive.
    let this = unsafe { Callbacks::<T>::borrow((*disk).private_data) };
    Some(this.into())
}

/// What gets called when a device number of a registered major is opened
/// and no disk has it yet.
pub trait Probe: Send + Sync + 'static {
    /// Create the disk for `minor`, if it should exist.
    fn probe(&self, minor: u32);
}

/// The one probe context of this module; set while a [`BlkdevMajor`] lives.
static PROBE_CTX: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// A registered block major (`__register_blkdev`) with its probe.
///
/// # Invariants
///
/// `major` is registered under `name`, and `PROBE_CTX` holds an
/// `Arc<P>` reference made by `into_foreign` until drop.
pub struct BlkdevMajor<P: Probe> {
    major: u32,
    name: &'static CStr,
    _p: PhantomData<Arc<P>>,
}

impl<P: Probe> BlkdevMajor<P> {
    /// Registers `major` as `name`, sending probes to `ctx`. A module can hold
    /// one such registration at a time; a second gets `EBUSY`.
    pub fn register(major: u32, name: &'static CStr, ctx: Arc<P>) -> Result<Self> {
        let foreign = ctx.into_foreign();
        if PROBE_CTX
            .compare_exchange(
                core::ptr::null_mut(),
                foreign,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `foreign` was never published.
            drop(unsafe { <Arc<P> as ForeignOwnable>::from_foreign(foreign) });
            return Err(EBUSY);
        }
        // SAFETY: `name` is a static NUL-terminated string; the probe callback
        // finds its context in `PROBE_CTX`, set above.
        let ret =
            unsafe { bindings::__register_blkdev(major, name.as_char_ptr(), Some(Self::probe)) };
        if ret != 0 {
            PROBE_CTX.store(core::ptr::null_mut(), Ordering::Release);
            // SAFETY: Registration failed, so no probe can run with `foreign`.
            drop(unsafe { <Arc<P> as ForeignOwnable>::from_foreign(foreign) });
            // `__register_blkdev` returns -EBUSY or -EINVAL for a fixed major.
            return Err(Error::from_errno(ret.min(-1)));
        }
        Ok(Self {
            major,
            name,
            _p: PhantomData,
        })
    }

    /// # Safety
    ///
    /// Called by the block layer, with `major_names_lock` held, for a device
    /// number of a major registered by [`Self::register`].
    unsafe extern "C" fn probe(devt: bindings::dev_t) {
        let ctx = PROBE_CTX.load(Ordering::Acquire);
        if ctx.is_null() {
            return;
        }
        // SAFETY: Probes run under `major_names_lock` and `unregister_blkdev`
        // takes it too, so the registration, and the context it stored, live
        // for the whole call.
        let ctx = unsafe { <Arc<P> as ForeignOwnable>::borrow(ctx) };
        ctx.probe(devt & ((1 << bindings::MINORBITS) - 1));
    }
}

impl<P: Probe> Drop for BlkdevMajor<P> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the major is registered under `name`.
        unsafe { bindings::unregister_blkdev(self.major, self.name.as_char_ptr()) };
        let ctx = PROBE_CTX.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !ctx.is_null() {
            // SAFETY: No probe runs after `unregister_blkdev`; the context is
            // the reference `register` stored.
            drop(unsafe { <Arc<P> as ForeignOwnable>::from_foreign(ctx) });
        }
    }
}
