// SPDX-License-Identifier: GPL-2.0

//! Queue limits and their update under the queue's limits lock.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h).

use super::DiskRef;
use core::mem::ManuallyDrop;
use kernel::{bindings, error::to_result, prelude::*};

// The C helpers of `src/helpers/`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_limits_start_update(q: *mut bindings::request_queue, lim: *mut bindings::queue_limits);
    fn rloop_limits_try_start_update(
        q: *mut bindings::request_queue,
        lim: *mut bindings::queue_limits,
    ) -> bool;
    fn rloop_limits_set_features(lim: *mut bindings::queue_limits, write_cache: bool, rot: bool);
    fn rloop_limits_cancel_update(q: *mut bindings::request_queue);
}

impl DiskRef {
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

    /// [`DiskRef::start_limits_update`] if no one else holds the limits
    /// lock, else `None`. For a path that may not wait for the lock: one
    /// that holds a request in flight, while whoever holds the lock may be
    /// waiting for the queue to drain.
    pub fn try_start_limits_update(&self) -> Option<LimitsUpdate<'_>> {
        let mut lim = Limits(pin_init::zeroed());
        // SAFETY: The queue is valid; on success `limits_lock` is held,
        // and the guard releases it by commit or cancel.
        if !unsafe { rloop_limits_try_start_update(self.queue(), &mut lim.0) } {
            return None;
        }
        Some(LimitsUpdate {
            disk: self,
            lim: ManuallyDrop::new(lim),
        })
    }

    /// The largest discard the queue takes now, in 512-byte sectors
    /// (`bdev_max_discard_sectors()`); 0 when it takes none.
    pub fn max_discard_sectors(&self) -> u32 {
        // SAFETY: The queue is valid; a racy read of one limit is what
        // `bdev_max_discard_sectors()` does too.
        unsafe { core::ptr::addr_of!((*self.queue()).limits.max_discard_sectors).read_volatile() }
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

    /// No more write-zeroes requests.
    pub fn clear_write_zeroes(&mut self) {
        self.0.max_write_zeroes_sectors = 0;
    }

    /// No more discard requests.
    pub fn clear_discard(&mut self) {
        self.0.max_hw_discard_sectors = 0;
        self.0.discard_granularity = 0;
    }

    /// The DMA alignment mask.
    pub fn set_dma_alignment(&mut self, mask: u32) {
        self.0.dma_alignment = mask;
    }
}
