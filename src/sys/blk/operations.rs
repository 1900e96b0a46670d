// SPDX-License-Identifier: GPL-2.0

//! What a driver implements to back a [`Disk`](super::Disk), and the
//! `blk_mq_ops` and `block_device_operations` tables that call it.
//!
//! C headers: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h),
//! [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h).

use super::{cmd::Cmd, BdevRef, BlkStatus, DiskRef, OpenMode, Request};
use core::{marker::PhantomData, ptr::NonNull, sync::atomic::Ordering};
use kernel::{
    bindings,
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::ForeignOwnable,
    ModuleMetadata,
};

/// What a driver implements to back a [`Disk`](super::Disk): the
/// `block_device_operations` of its disks, on top of the request callbacks
/// of [`QueueOperations`].
///
/// Every callback gets the device object the disk was created with.
pub trait DiskDriver: QueueOperations {
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

    /// A block device ioctl of a 32-bit caller (`compat_ioctl`) the block
    /// layer did not handle itself. A pointer in `arg` is an address only
    /// through [`compat_ptr`](crate::sys::compat_ptr). A command the driver
    /// does not know is `ENOIOCTLCMD`, which the caller sees as `ENOTTY`.
    #[cfg(CONFIG_COMPAT)]
    fn compat_ioctl(
        this: ArcBorrow<'_, Self>,
        disk: &DiskRef,
        bdev: &BdevRef,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
    ) -> Result<i32>;
}

/// The request callbacks of a driver's queue: `blk_mq_ops.queue_rq`, and
/// the callbacks that give a request back to the driver after this layer
/// moved it to another context (a kiocb, a page wait, a work item).
///
/// Every callback gets the device object the disk was created with.
pub trait QueueOperations: Send + Sync + Sized + 'static {
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

    /// A request given to [`Request::queue_work`], in a worker: it may
    /// sleep. `this` is borrowed from the request's queue and is alive
    /// only until `rq` ends: the device may go right after.
    fn run_queued(this: ArcBorrow<'_, Self>, rq: Request);
}

pub(super) struct Callbacks<T: DiskDriver>(PhantomData<T>);

/// [`DiskDriver::ioctl`] or [`DiskDriver::compat_ioctl`].
type IoctlHandler<T> =
    for<'a> fn(ArcBorrow<'a, T>, &DiskRef, &BdevRef, OpenMode, u32, usize) -> Result<i32>;

impl<T: DiskDriver> Callbacks<T> {
    pub(super) const MQ_OPS: bindings::blk_mq_ops = bindings::blk_mq_ops {
        queue_rq: Some(Self::queue_rq),
        complete: Some(Self::complete),
        ..pin_init::zeroed()
    };

    pub(super) const FOPS: bindings::block_device_operations = bindings::block_device_operations {
        open: Some(Self::open),
        release: Some(Self::release),
        ioctl: Some(Self::ioctl),
        #[cfg(CONFIG_COMPAT)]
        compat_ioctl: Some(Self::compat_ioctl),
        free_disk: Some(Self::free_disk),
        owner: T::Owner::THIS_MODULE.as_ptr(),
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// `data` must be the `private_data`/`queuedata` of a disk made by
    /// [`Disk::new`] for `T`, whose `free_disk` has not run yet.
    pub(super) unsafe fn borrow<'a>(data: *mut c_void) -> ArcBorrow<'a, T> {
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
        // SAFETY: As this function's.
        unsafe { Self::dispatch_ioctl(T::ioctl, bdev, mode, cmd, arg) }
    }

    /// # Safety
    ///
    /// As [`Self::ioctl`], for a 32-bit caller.
    #[cfg(CONFIG_COMPAT)]
    unsafe extern "C" fn compat_ioctl(
        bdev: *mut bindings::block_device,
        mode: bindings::blk_mode_t,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_int {
        // SAFETY: As this function's.
        unsafe { Self::dispatch_ioctl(T::compat_ioctl, bdev, mode, cmd, arg) }
    }

    /// Calls `handler` with the device and disk of `bdev`.
    ///
    /// # Safety
    ///
    /// `bdev` is an open block device of a disk made by [`Disk::new`], open
    /// for the duration of the call.
    unsafe fn dispatch_ioctl(
        handler: IoctlHandler<T>,
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
        match handler(this, disk, bdev, OpenMode(mode), cmd, arg) {
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
