// SPDX-License-Identifier: GPL-2.0

//! The block device operations of a loop device: open, release, and the
//! dispatch of the loop ioctls (`lo_ioctl()`).

use kernel::{
    prelude::*,
    sync::ArcBorrow,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

use super::{LoopDevice, Phase};
use crate::sys::{
    self,
    blk::{BdevRef, DiskDriver, DiskRef, OpenMode},
};
use crate::uapi::{self, LoopConfig, LoopInfo, LoopInfo64};

fn user_arg(arg: usize) -> Result<usize> {
    if arg == 0 {
        return Err(EINVAL);
    }
    Ok(arg)
}

/// Whether an opener with `mode` may change the device. As C, `capable()`
/// is asked only of a read-only opener: a denied capability is what an LSM
/// or audit logs, and a status read must not log one.
fn may_change(mode: OpenMode) -> bool {
    mode.write() || sys::capable_sys_admin()
}

/// Reads a `T` from the user address `addr`.
fn read_user<T: FromBytes>(addr: usize) -> Result<T> {
    UserSlice::new(UserPtr::from_addr(addr), size_of::<T>())
        .reader()
        .read()
}

/// Writes `value` to the user address `addr`.
fn write_user<T: AsBytes>(addr: usize, value: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(addr), size_of::<T>())
        .writer()
        .write(value)
}

impl DiskDriver for LoopDevice {
    type Owner = crate::LocalModule;

    fn open(this: ArcBorrow<'_, Self>, _disk: &DiskRef) -> Result {
        let _guard = this.lock_killable()?;
        match this.phase() {
            Phase::Deleting | Phase::Rundown => Err(ENXIO),
            Phase::Unbound | Phase::Bound => Ok(()),
        }
    }

    fn release(this: ArcBorrow<'_, Self>, disk: &DiskRef) {
        if disk.openers() > 0 {
            return;
        }
        this.last_close(disk);
    }

    fn ioctl(
        this: ArcBorrow<'_, Self>,
        disk: &DiskRef,
        bdev: &BdevRef,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
    ) -> Result<i32> {
        // Reconfiguring takes an exclusive claim unless the opener has one,
        // so as not to change a device under its exclusive owner.
        let claim = || -> Result<_> {
            if mode.exclusive() {
                Ok(None)
            } else {
                bdev.claim().map(Some)
            }
        };
        match cmd {
            uapi::LOOP_SET_FD => {
                // As C: a loop_config with only the descriptor set.
                let config = LoopConfig {
                    fd: arg as u32,
                    ..LoopConfig::default()
                };
                let _claim = claim()?;
                this.configure(disk, mode, &config)?;
            }
            uapi::LOOP_CONFIGURE => {
                let config: LoopConfig = read_user(arg)?;
                let _claim = claim()?;
                this.configure(disk, mode, &config)?;
            }
            uapi::LOOP_CLR_FD => this.clr_fd(disk)?,
            uapi::LOOP_CHANGE_FD => this.change_fd(disk, arg as u32)?,
            uapi::LOOP_SET_STATUS | uapi::LOOP_SET_STATUS64 if !may_change(mode) => {
                return Err(EPERM)
            }
            uapi::LOOP_SET_STATUS => {
                let old: LoopInfo = read_user(arg)?;
                this.set_status(disk, &LoopInfo64::from_old(&old))?;
            }
            uapi::LOOP_SET_STATUS64 => {
                let info: LoopInfo64 = read_user(arg)?;
                this.set_status(disk, &info)?;
            }
            uapi::LOOP_GET_STATUS => {
                let arg = user_arg(arg)?;
                let old = this.get_status()?.to_old().ok_or(EOVERFLOW)?;
                write_user(arg, &old)?;
            }
            uapi::LOOP_GET_STATUS64 => {
                let arg = user_arg(arg)?;
                let info = this.get_status()?;
                write_user(arg, &info)?;
            }
            uapi::LOOP_SET_BLOCK_SIZE | uapi::LOOP_SET_CAPACITY | uapi::LOOP_SET_DIRECT_IO
                if !may_change(mode) =>
            {
                return Err(EPERM)
            }
            uapi::LOOP_SET_BLOCK_SIZE => {
                let _claim = claim()?;
                this.set_block_size(disk, arg)?
            }
            uapi::LOOP_SET_CAPACITY => this.set_capacity(disk)?,
            uapi::LOOP_SET_DIRECT_IO => this.set_direct_io(disk, arg)?,
            _ => return Err(EINVAL),
        }
        Ok(0)
    }

    /// `lo_compat_ioctl()`: the two commands whose struct a 32-bit caller
    /// lays out otherwise convert it; the others are the native ones, their
    /// pointers through `compat_ptr`.
    #[cfg(CONFIG_COMPAT)]
    fn compat_ioctl(
        this: ArcBorrow<'_, Self>,
        disk: &DiskRef,
        bdev: &BdevRef,
        mode: OpenMode,
        cmd: u32,
        arg: usize,
    ) -> Result<i32> {
        use crate::uapi::CompatLoopInfo;
        match cmd {
            uapi::LOOP_SET_STATUS if !may_change(mode) => return Err(EPERM),
            uapi::LOOP_SET_STATUS => {
                let info: CompatLoopInfo = read_user(sys::compat_ptr(arg))?;
                this.set_status(disk, &LoopInfo64::from_compat(&info))?;
            }
            uapi::LOOP_GET_STATUS => {
                let arg = user_arg(sys::compat_ptr(arg))?;
                let info = this.get_status()?.to_compat().ok_or(EOVERFLOW)?;
                write_user(arg, &info)?;
            }
            uapi::LOOP_SET_CAPACITY
            | uapi::LOOP_CLR_FD
            | uapi::LOOP_GET_STATUS64
            | uapi::LOOP_SET_STATUS64
            | uapi::LOOP_CONFIGURE => {
                return Self::ioctl(this, disk, bdev, mode, cmd, sys::compat_ptr(arg))
            }
            // Their argument is a number, not a pointer.
            uapi::LOOP_SET_FD
            | uapi::LOOP_CHANGE_FD
            | uapi::LOOP_SET_BLOCK_SIZE
            | uapi::LOOP_SET_DIRECT_IO => return Self::ioctl(this, disk, bdev, mode, cmd, arg),
            _ => return Err(ENOIOCTLCMD),
        }
        Ok(0)
    }
}
