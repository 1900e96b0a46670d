// SPDX-License-Identifier: GPL-2.0

//! A disk with a fixed major, chosen minors and the driver's
//! `block_device_operations` ([`Disk`]), and the disk as its callbacks see
//! it ([`DiskRef`]).
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h).

use super::{operations::Callbacks, DiskDriver, TagSet};
use crate::sys::file::{BackingFile, FileKind};
use core::{fmt::Write, marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    prelude::*,
    str::NullTerminatedFormatter,
    sync::Arc,
    types::{ForeignOwnable, Opaque},
    ModuleMetadata,
};

// The C helpers of `src/helpers/`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_disk_openers(disk: *mut bindings::gendisk) -> c_uint;
    fn rloop_disk_set_part_scan(disk: *mut bindings::gendisk, enable: bool);
    fn rloop_disk_uevent_change(disk: *mut bindings::gendisk);
    fn rloop_disk_suppress_uevents(disk: *mut bindings::gendisk, suppress: bool);
    fn rloop_queue_freeze(q: *mut bindings::request_queue) -> c_uint;
    fn rloop_queue_unfreeze(q: *mut bindings::request_queue, memflags: c_uint);
    fn rloop_disk_rescan_partitions(disk: *mut bindings::gendisk, open_mutex_held: bool) -> c_int;
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
                tag_set.raw(),
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

/// The driver object of a disk of this module's that `file` is open on,
/// if it is one: how the loop driver finds a loop device used as a backing
/// file. A module has one `DiskDriver` type, so the owner identifies it.
pub fn driver_behind<T: DiskDriver>(file: &BackingFile) -> Option<Arc<T>> {
    if !matches!(file.kind(), FileKind::Block(_)) {
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
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::gendisk) -> &'a Self {
        // SAFETY: `DiskRef` is a transparent wrapper and the caller guarantees
        // the pointee lives long enough.
        unsafe { &*ptr.cast() }
    }

    pub(super) fn as_ptr(&self) -> *mut bindings::gendisk {
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

    pub(super) fn queue(&self) -> *mut bindings::request_queue {
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
