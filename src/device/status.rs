// SPDX-License-Identifier: GPL-2.0

//! The ioctls that change or read a bound device: `LOOP_SET_STATUS(64)`,
//! `LOOP_GET_STATUS(64)`, `LOOP_SET_CAPACITY`, `LOOP_SET_DIRECT_IO` and
//! `LOOP_SET_BLOCK_SIZE`.

use kernel::prelude::*;

use super::limits::{can_use_dio, capacity, check_info, BoundLimits};
use super::{LoopDevice, State};
use crate::sys::blk::DiskRef;
use crate::uapi::{self, LoopInfo64};

impl LoopDevice {
    // --- status -------------------------------------------------------------

    /// `LOOP_SET_STATUS64`, as `loop_set_status()`.
    pub(super) fn set_status(&self, disk: &DiskRef, info: &LoopInfo64) -> Result {
        let mut inner = self.inner.lock();
        let State::Bound(b) = &mut inner.state else {
            return Err(ENXIO);
        };
        let size_changed = b.offset != info.lo_offset || b.sizelimit != info.lo_sizelimit;
        if size_changed {
            disk.sync_and_invalidate();
        }
        check_info(info)?;
        // A new offset can rule direct I/O out (`loop_update_dio()`).
        let direct = b.flags & uapi::LO_FLAGS_DIRECT_IO != 0
            && can_use_dio(
                &b.file,
                b.dio_align,
                disk.logical_block_size(),
                info.lo_offset,
            );
        let io = self.remake_io(info.lo_offset, direct)?;
        let partscan;
        {
            // I/O is drained before the offset or size limit changes.
            let _frozen = disk.freeze();
            b.offset = info.lo_offset;
            b.sizelimit = info.lo_sizelimit;
            b.file_name = info.stored_file_name();
            partscan = b.flags & uapi::LO_FLAGS_PARTSCAN == 0
                && info.lo_flags & uapi::LO_FLAGS_PARTSCAN != 0;
            b.flags &= !uapi::LOOP_SET_STATUS_CLEARABLE_FLAGS;
            b.flags |= info.lo_flags & uapi::LOOP_SET_STATUS_SETTABLE_FLAGS;
            if !direct {
                b.flags &= !uapi::LO_FLAGS_DIRECT_IO;
            }
            if io.is_some() {
                self.set_io(io);
            }
        }
        if partscan {
            disk.set_part_scan(true);
        }
        if size_changed {
            disk.set_capacity(capacity(b));
        }
        drop(inner);
        if partscan {
            self.rescan(disk, false);
        }
        Ok(())
    }

    /// `LOOP_GET_STATUS64`, as `loop_get_status()`.
    pub(super) fn get_status(&self) -> Result<LoopInfo64> {
        let inner = self.inner.lock();
        let State::Bound(b) = &inner.state else {
            return Err(ENXIO);
        };
        let mut info = LoopInfo64 {
            lo_number: self.index,
            lo_offset: b.offset,
            lo_sizelimit: b.sizelimit,
            lo_flags: b.flags,
            lo_file_name: b.file_name,
            ..LoopInfo64::default()
        };
        let file = b.file.clone_ref();
        // The filesystem is asked without the lock.
        drop(inner);
        let ids = file.ids()?;
        info.lo_device = ids.dev;
        info.lo_inode = ids.ino;
        info.lo_rdevice = ids.rdev;
        Ok(info)
    }

    /// `LOOP_SET_CAPACITY`.
    pub(super) fn set_capacity(&self, disk: &DiskRef) -> Result {
        let inner = self.inner.lock();
        let State::Bound(b) = &inner.state else {
            return Err(ENXIO);
        };
        disk.set_capacity(capacity(b));
        Ok(())
    }

    /// `LOOP_SET_DIRECT_IO`, as `loop_set_dio()`: any non-zero `arg` turns
    /// direct I/O on, which fails with `EINVAL` when the alignment rules
    /// rule it out; the device then stays as it was.
    pub(super) fn set_direct_io(&self, disk: &DiskRef, arg: usize) -> Result {
        let mut inner = self.inner.lock();
        let State::Bound(b) = &mut inner.state else {
            return Err(ENXIO);
        };
        let on = arg != 0;
        if on == (b.flags & uapi::LO_FLAGS_DIRECT_IO != 0) {
            return Ok(());
        }
        if on {
            if !can_use_dio(&b.file, b.dio_align, disk.logical_block_size(), b.offset) {
                return Err(EINVAL);
            }
            // Write back the page cache before I/O starts going around it.
            let _ = b.file.fsync();
        }
        let io = self.remake_io(b.offset, on)?;
        let mut limits = disk.start_limits_update();
        limits.set_dma_alignment(b.dio_align.dma_alignment(on));
        // In-flight I/O of the old mode drains before the switch.
        let _frozen = disk.freeze();
        limits.commit()?;
        if on {
            b.flags |= uapi::LO_FLAGS_DIRECT_IO;
        } else {
            b.flags &= !uapi::LO_FLAGS_DIRECT_IO;
        }
        if io.is_some() {
            self.set_io(io);
        }
        Ok(())
    }

    /// `LOOP_SET_BLOCK_SIZE`, as `loop_set_block_size()`.
    pub(super) fn set_block_size(&self, disk: &DiskRef, arg: usize) -> Result {
        let mut inner = self.inner.lock();
        let State::Bound(b) = &mut inner.state else {
            return Err(ENXIO);
        };
        if disk.logical_block_size() as usize == arg {
            return Ok(());
        }
        let bsize = u32::try_from(arg).map_err(|_| EINVAL)?;
        disk.sync_and_invalidate();
        // A smaller block size can rule direct I/O out (`loop_update_dio()`).
        let mut flags = b.flags;
        if !can_use_dio(&b.file, b.dio_align, bsize, b.offset) {
            flags &= !uapi::LO_FLAGS_DIRECT_IO;
        }
        let direct = flags & uapi::LO_FLAGS_DIRECT_IO != 0;
        let io = self.remake_io(b.offset, direct)?;
        let mut limits = disk.start_limits_update();
        BoundLimits::new(&b.file, flags, bsize, b.dio_align).apply(&mut limits);
        let _frozen = disk.freeze();
        limits.commit()?;
        b.flags = flags;
        if io.is_some() {
            self.set_io(io);
        }
        Ok(())
    }
}
