// SPDX-License-Identifier: GPL-2.0

//! The ioctls that change or read a bound device: `LOOP_SET_STATUS(64)`,
//! `LOOP_GET_STATUS(64)`, `LOOP_SET_CAPACITY`, `LOOP_SET_DIRECT_IO` and
//! `LOOP_SET_BLOCK_SIZE`.
//!
//! Each change takes one flow: the device lock and the bound check
//! ([`bound`]), the new settings worked out, then
//! [`LoopDevice::reconfigure`] with the I/O drained.

use kernel::prelude::*;

use super::limits::{can_use_dio, capacity, check_info, dio_flags, is_direct, BoundLimits};
use super::{Binding, Inner, LoopDevice, State};
use crate::sys::blk::{DiskRef, Limits};
use crate::uapi::{self, LoopInfo64};

/// The binding of a bound device, or `ENXIO`: what every ioctl that
/// changes or reads a device's settings needs.
pub(super) fn bound(inner: &mut Inner) -> Result<&mut Binding> {
    match &mut inner.state {
        State::Bound(b) => Ok(b),
        _ => Err(ENXIO),
    }
}

impl LoopDevice {
    /// Changes a bound device's settings with its I/O drained. The new I/O
    /// configuration, for `offset` and `direct`, is made first, so that
    /// failing changes nothing; `limits`, if any, edit the queue limits
    /// under the limits lock; then the queue is frozen, so that every
    /// request of the old settings has ended, the limits are committed,
    /// `apply` changes the binding, and the new I/O configuration goes in
    /// before the first request of the new settings starts.
    fn reconfigure(
        &self,
        disk: &DiskRef,
        b: &mut Binding,
        (offset, direct): (u64, bool),
        limits: Option<&dyn Fn(&mut Limits)>,
        apply: impl FnOnce(&mut Binding),
    ) -> Result {
        let io = self.remake_io(offset, direct)?;
        let update = limits.map(|edit| {
            let mut update = disk.start_limits_update();
            edit(&mut update);
            update
        });
        let _frozen = disk.freeze();
        if let Some(update) = update {
            update.commit()?;
        }
        apply(b);
        if io.is_some() {
            self.set_io(io);
        }
        Ok(())
    }

    /// `LOOP_SET_STATUS64`, as `loop_set_status()`.
    pub(super) fn set_status(&self, disk: &DiskRef, info: &LoopInfo64) -> Result {
        let mut inner = self.lock_killable()?;
        let b = bound(&mut inner)?;
        let size_changed = b.offset != info.lo_offset || b.sizelimit != info.lo_sizelimit;
        if size_changed {
            disk.sync_and_invalidate();
        }
        check_info(info)?;
        // A new offset can rule direct I/O out.
        let flags = dio_flags(
            b.flags,
            &b.file,
            b.dio_align,
            disk.logical_block_size(),
            info.lo_offset,
        );
        let partscan =
            b.flags & uapi::LO_FLAGS_PARTSCAN == 0 && info.lo_flags & uapi::LO_FLAGS_PARTSCAN != 0;
        self.reconfigure(disk, b, (info.lo_offset, is_direct(flags)), None, |b| {
            b.offset = info.lo_offset;
            b.sizelimit = info.lo_sizelimit;
            b.file_name = info.stored_file_name();
            b.flags = (flags & !uapi::LOOP_SET_STATUS_CLEARABLE_FLAGS)
                | (info.lo_flags & uapi::LOOP_SET_STATUS_SETTABLE_FLAGS);
        })?;
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
        let mut inner = self.lock_killable()?;
        let b = bound(&mut inner)?;
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
        let mut inner = self.lock_killable()?;
        disk.set_capacity(capacity(bound(&mut inner)?));
        Ok(())
    }

    /// `LOOP_SET_DIRECT_IO`, as `loop_set_dio()`: any non-zero `arg` turns
    /// direct I/O on, which fails with `EINVAL` when the alignment rules
    /// rule it out; the device then stays as it was.
    pub(super) fn set_direct_io(&self, disk: &DiskRef, arg: usize) -> Result {
        let mut inner = self.lock_killable()?;
        let b = bound(&mut inner)?;
        let on = arg != 0;
        if on == is_direct(b.flags) {
            return Ok(());
        }
        if on {
            if !can_use_dio(&b.file, b.dio_align, disk.logical_block_size(), b.offset) {
                return Err(EINVAL);
            }
            // Write back the page cache before I/O starts going around it.
            let _ = b.file.fsync();
        }
        let (offset, dma_alignment) = (b.offset, b.dio_align.dma_alignment(on));
        self.reconfigure(
            disk,
            b,
            (offset, on),
            Some(&|lim: &mut Limits| lim.set_dma_alignment(dma_alignment)),
            |b| {
                if on {
                    b.flags |= uapi::LO_FLAGS_DIRECT_IO;
                } else {
                    b.flags &= !uapi::LO_FLAGS_DIRECT_IO;
                }
            },
        )
    }

    /// `LOOP_SET_BLOCK_SIZE`, as `loop_set_block_size()`.
    pub(super) fn set_block_size(&self, disk: &DiskRef, arg: usize) -> Result {
        let mut inner = self.lock_killable()?;
        let b = bound(&mut inner)?;
        if disk.logical_block_size() as usize == arg {
            return Ok(());
        }
        // 0 asks for the default, as `loop_default_blocksize()`: the direct
        // I/O size on a direct I/O device (which keeps direct I/O), else 512.
        let bsize = match arg {
            0 => b.dio_align.default_block_size(is_direct(b.flags)),
            _ => u32::try_from(arg).map_err(|_| EINVAL)?,
        };
        disk.sync_and_invalidate();
        // A smaller block size can rule direct I/O out.
        let flags = dio_flags(b.flags, &b.file, b.dio_align, bsize, b.offset);
        let limits = BoundLimits::new(&b.file, flags, bsize, b.dio_align);
        let offset = b.offset;
        self.reconfigure(
            disk,
            b,
            (offset, is_direct(flags)),
            Some(&|lim: &mut Limits| limits.apply(lim)),
            |b| b.flags = flags,
        )
    }
}
