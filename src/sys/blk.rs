// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers for the block layer pieces a loop driver needs and the
//! kernel crate's `block::mq` does not offer: a tag set whose queue and disk
//! data is an [`Arc`] of the driver's device object, a disk with a fixed major,
//! chosen minors and `block_device_operations` (open, release, ioctl), and the
//! registration of a block major with a probe callback.
//!
//! C headers: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h),
//! [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h).

use core::{
    fmt::Write,
    marker::PhantomData,
    ptr::NonNull,
    sync::atomic::{AtomicPtr, Ordering},
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
    fn ioctl(this: ArcBorrow<'_, Self>, cmd: u32, arg: usize) -> Result<i32>;

    /// A request from the queue, already started. `Err(status)` ends it at
    /// once with that status.
    // TODO(data path): hand the request itself over, with its accessors.
    fn queue_rq(this: ArcBorrow<'_, Self>) -> Result<(), BlkStatus>;
}

struct Callbacks<T: DiskDriver>(PhantomData<T>);

impl<T: DiskDriver> Callbacks<T> {
    const MQ_OPS: bindings::blk_mq_ops = bindings::blk_mq_ops {
        queue_rq: Some(Self::queue_rq),
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
        let rq = unsafe { (*bd).rq };
        // SAFETY: `rq` is the live request blk-mq just handed over.
        unsafe { bindings::blk_mq_start_request(rq) };
        // SAFETY: `hctx` and its queue are valid in `queue_rq`; the queue data
        // is what `Disk::new` set, alive until `free_disk`.
        let this = unsafe { Self::borrow((*(*hctx).queue).queuedata) };
        match T::queue_rq(this) {
            Ok(()) => BlkStatus::OK.0,
            Err(status) => status.0,
        }
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
        _mode: bindings::blk_mode_t,
        cmd: c_uint,
        arg: c_ulong,
    ) -> c_int {
        // SAFETY: An open block device has a live disk whose private data is ours.
        let this = unsafe { Self::borrow((*(*bdev).bd_disk).private_data) };
        match T::ioctl(this, cmd, arg) {
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
                        cmd_size: 0,
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
