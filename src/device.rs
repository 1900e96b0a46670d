// SPDX-License-Identifier: GPL-2.0

//! One loop device: `/dev/loopN`, its queue, and its state.

use core::sync::atomic::{AtomicU8, Ordering};
use kernel::{
    new_mutex,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
};

use crate::params::Layout;
use crate::sys::blk::{tag_set_flags, BlkStatus, Disk, DiskDriver, DiskParams, DiskRef, TagSet};
use crate::uapi;

/// Where a device is in its life.
///
/// Attaching a backing file (the `Bound` and `Rundown` states) comes with
/// the buffered data path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// No backing file; I/O fails.
    Unbound = 0,
    /// `LOOP_CTL_REMOVE` or module exit is taking the device down.
    Deleting = 1,
}

impl State {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Unbound,
            _ => Self::Deleting,
        }
    }
}

/// What the device lock protects.
struct Inner {
    /// The disk, from `add_disk` until removal takes it away.
    disk: Option<Disk<LoopDevice>>,
}

/// A loop device.
///
/// # Invariants
///
/// `state` only changes with `inner` locked.
#[pin_data]
pub(crate) struct LoopDevice {
    index: u32,
    /// Readable without the lock, as `READ_ONCE(lo->lo_state)` in C.
    state: AtomicU8,
    #[pin]
    inner: Mutex<Inner>,
    /// Freed after the disk, when the last reference goes.
    #[pin]
    tag_set: TagSet<LoopDevice>,
}

impl LoopDevice {
    /// Makes the device object of `loopN` with its tag set; no disk yet.
    pub(crate) fn new(index: u32, layout: &Layout) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                index,
                state: AtomicU8::new(State::Unbound as u8),
                inner <- new_mutex!(Inner { disk: None }),
                tag_set <- TagSet::new(
                    1,
                    layout.hw_queue_depth,
                    tag_set_flags::STACKING | tag_set_flags::NO_SCHED_BY_DEFAULT,
                ),
            }),
            GFP_KERNEL,
        )
    }

    /// Adds `/dev/loopN` to the system.
    pub(crate) fn add_disk(self: &Arc<Self>, layout: &Layout) -> Result {
        let first_minor = layout.first_minor(self.index).ok_or(EINVAL)?;
        let disk = Disk::new(
            &self.tag_set,
            self.clone(),
            DiskParams {
                major: uapi::LOOP_MAJOR,
                first_minor,
                minors: layout.minors(),
                // With max_part, partitions are scanned on every device; else
                // only on request (LO_FLAGS_PARTSCAN).
                part_scan: layout.part_shift > 0,
                name: format_args!("loop{}", self.index),
                max_hw_sectors: crate::params::MAX_HW_SECTORS,
            },
        )?;
        self.inner.lock().disk = Some(disk);
        Ok(())
    }

    /// The device index, N of `/dev/loopN`.
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// The current state, read without the lock; it may change at once.
    pub(crate) fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Marks the device as going away if nothing uses it, as the check in
    /// `loop_control_remove()` does: it must be unbound and not open.
    ///
    /// On success the disk is handed back, to be dropped outside any lock.
    pub(crate) fn start_removal(&self) -> Result<Option<Disk<LoopDevice>>> {
        let mut inner = self.inner.lock();
        let busy = match &inner.disk {
            Some(disk) => disk.disk_ref().openers() > 0,
            None => false,
        };
        if self.state() != State::Unbound || busy {
            return Err(EBUSY);
        }
        self.state.store(State::Deleting as u8, Ordering::Relaxed);
        Ok(inner.disk.take())
    }

    /// Takes the device down for module exit, whatever its state.
    pub(crate) fn take_disk_for_exit(&self) -> Option<Disk<LoopDevice>> {
        let mut inner = self.inner.lock();
        self.state.store(State::Deleting as u8, Ordering::Relaxed);
        inner.disk.take()
    }
}

impl DiskDriver for LoopDevice {
    type Owner = crate::LocalModule;

    fn open(this: ArcBorrow<'_, Self>, _disk: &DiskRef) -> Result {
        let _guard = this.inner.lock();
        match this.state() {
            State::Deleting => Err(ENXIO),
            State::Unbound => Ok(()),
        }
    }

    fn release(_this: ArcBorrow<'_, Self>, _disk: &DiskRef) {
        // Nothing to do for an unbound device. With attach, the last close
        // (`disk.openers() == 0`) of an autoclear device detaches it.
    }

    fn ioctl(_this: ArcBorrow<'_, Self>, _cmd: u32, _arg: usize) -> Result<i32> {
        // The LOOP_* device ioctls come with attach and status.
        Err(ENOTTY)
    }

    fn queue_rq(this: ArcBorrow<'_, Self>) -> Result<(), BlkStatus> {
        match this.state() {
            // No backing file: fail at once, as `loop_queue_rq()` does.
            State::Unbound | State::Deleting => Err(BlkStatus::io_error()),
        }
    }
}
