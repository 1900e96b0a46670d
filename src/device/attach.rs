// SPDX-License-Identifier: GPL-2.0

//! Attach and detach: `LOOP_SET_FD` and `LOOP_CONFIGURE`
//! (`loop_configure()`), the chain check (`loop_validate_file()`),
//! `LOOP_CHANGE_FD`, `LOOP_CLR_FD` and the detach at last close
//! (`__loop_clr_fd()`).

use kernel::{
    pr_warn,
    prelude::*,
    sync::{GlobalGuard, MutexGuard},
};

use super::limits::{
    capacity, check_backing_file, check_info, dio_align_of, dio_flags, is_direct, BoundLimits,
};
use super::status::bound;
use super::{Binding, Inner, IoConfig, LoopDevice, State};
use crate::sys::{
    blk::{driver_behind, DiskRef, OpenMode},
    file::{BackingFile, FileKind},
    ModuleRef,
};
use crate::uapi::{self, LoopConfig};

kernel::sync::global_lock! {
    // SAFETY: Initialised by `init_chain_lock`, in the module's init, before
    // any device exists.
    unsafe(uninit) static CHAIN_LOCK: Mutex<()> = ();
}

/// Initialises the lock of the chain check, as `loop_validate_mutex`.
///
/// # Safety
///
/// Called once, in the module's init, before any device exists.
pub(crate) unsafe fn init_chain_lock() {
    // SAFETY: Called once, before first use, by the function's contract.
    unsafe { CHAIN_LOCK.init() };
}

/// A device's lock, taken once its new file's chain of loop devices was
/// found valid, and, when that file is a loop device, the module-wide lock
/// of the chain check (`loop_global_lock_killable()`): no other attach or
/// change of file can alter the chain until both go, so that two of them
/// racing cannot form a cycle.
///
/// # Invariants
///
/// `_chain` is held whenever the file checked is a loop device, from before
/// its chain was walked.
pub(super) struct Validated<'a> {
    // Dropped first, as `loop_global_unlock()` unlocks.
    pub(super) inner: MutexGuard<'a, Inner>,
    _chain: Option<GlobalGuard<CHAIN_LOCK>>,
}

impl LoopDevice {
    // --- attach -------------------------------------------------------------

    /// `LOOP_SET_FD` and `LOOP_CONFIGURE`, as `loop_configure()`.
    pub(super) fn configure(&self, disk: &DiskRef, mode: OpenMode, config: &LoopConfig) -> Result {
        let file = BackingFile::from_fd(config.fd)?;
        check_backing_file(&file)?;
        // The errno order of C: EBUSY before the checks of the file.
        let mut locked = self.lock_validated(&file, disk, |inner| match inner.state {
            State::Unbound => Ok(()),
            _ => Err(EBUSY),
        })?;
        let inner = &mut locked.inner;
        if config.info.lo_flags & !uapi::LOOP_CONFIGURE_SETTABLE_FLAGS != 0 {
            return Err(EINVAL);
        }
        check_info(&config.info)?;
        let mut flags = config.info.lo_flags;
        if !file.opened_for_write() || !mode.write() || !file.has_write_iter() {
            flags |= uapi::LO_FLAGS_READ_ONLY;
        }
        // An O_DIRECT backing file asks for direct I/O too.
        if file.opened_direct() {
            flags |= uapi::LO_FLAGS_DIRECT_IO;
        }
        if self.part_shift > 0 {
            flags |= uapi::LO_FLAGS_PARTSCAN;
        }

        let dio_align = dio_align_of(&file);
        let bsize = if config.block_size != 0 {
            config.block_size
        } else {
            dio_align.default_block_size(is_direct(flags))
        };
        let flags = dio_flags(flags, &file, dio_align, bsize, config.info.lo_offset);
        let direct = is_direct(flags);
        let limits = BoundLimits::new(&file, flags, bsize, dio_align);
        // Allocated before anything changes, so that failing leaves no trace.
        let io = IoConfig::new(
            &file,
            config.info.lo_offset,
            direct,
            flags & uapi::LO_FLAGS_READ_ONLY != 0,
        )?;

        disk.suppress_uevents(true);
        disk.force_media_change();
        disk.set_read_only(flags & uapi::LO_FLAGS_READ_ONLY != 0);
        let limits = disk.update_limits(|lim| limits.apply(lim));
        if let Err(e) = limits {
            disk.suppress_uevents(false);
            return Err(e);
        }
        // Write back the page cache before I/O starts going around it.
        let _ = file.fsync();

        let binding = Binding {
            file,
            offset: config.info.lo_offset,
            sizelimit: config.info.lo_sizelimit,
            flags,
            file_name: config.info.stored_file_name(),
            dio_align,
            sysfs: disk.sysfs_add().is_ok(),
            _module: ModuleRef::get(),
        };
        let sectors = capacity(&binding);
        self.set_io(Some(io));
        disk.set_capacity(sectors);
        let partscan = flags & uapi::LO_FLAGS_PARTSCAN != 0;
        self.set_state(inner, State::Bound(binding));
        if partscan {
            disk.set_part_scan(true);
        }
        disk.suppress_uevents(false);
        disk.uevent_change();
        drop(locked);
        if partscan {
            self.rescan(disk, false);
        }
        Ok(())
    }

    /// Locks the device once `file`'s chain of loop devices is found valid
    /// ([`Self::validate_chain`]), under the chain lock if `file` is a loop
    /// device ([`Validated`]). The walk takes the other devices' locks, so
    /// it runs without this one's: `check` runs on the state before the
    /// walk, for the errno order of C, and again after it, under the lock
    /// returned, since the state may have changed meanwhile.
    fn lock_validated(
        &self,
        file: &BackingFile,
        disk: &DiskRef,
        check: impl Fn(&mut Inner) -> Result,
    ) -> Result<Validated<'_>> {
        let chain = driver_behind::<LoopDevice>(file).map(|_| CHAIN_LOCK.lock());
        check(&mut *self.lock_killable()?)?;
        self.validate_chain(file, disk)?;
        let mut inner = self.lock_killable()?;
        check(&mut inner)?;
        // INVARIANT: `chain` was taken above if `file` is a loop device.
        Ok(Validated {
            inner,
            _chain: chain,
        })
    }

    /// Refuses the device itself, and chains of loop devices that are not
    /// all bound, as `loop_validate_file()`.
    pub(super) fn validate_chain(&self, file: &BackingFile, disk: &DiskRef) -> Result {
        let own = disk.devt();
        let mut next: Option<BackingFile> = None;
        loop {
            let f = next.as_ref().unwrap_or(file);
            if let FileKind::Block(rdev) = f.kind() {
                if rdev == own {
                    return Err(EBADF);
                }
            }
            let Some(dev) = driver_behind::<LoopDevice>(f) else {
                break;
            };
            let inner = dev.inner.lock();
            let State::Bound(b) = &inner.state else {
                return Err(EINVAL);
            };
            let f = b.file.clone_ref();
            drop(inner);
            next = Some(f);
        }
        match file.kind() {
            FileKind::Regular | FileKind::Block(_) => Ok(()),
            FileKind::Other => Err(EINVAL),
        }
    }

    pub(super) fn rescan(&self, disk: &DiskRef, open_mutex_held: bool) {
        if let Err(e) = disk.rescan_partitions(open_mutex_held) {
            pr_warn!(
                "partition scan of loop{} failed (rc={})\n",
                self.index,
                e.to_errno()
            );
        }
    }

    // --- detach -------------------------------------------------------------

    /// `LOOP_CLR_FD`: detach at last close, now if this is the only opener.
    pub(super) fn clr_fd(&self, disk: &DiskRef) -> Result {
        let mut inner = self.lock_killable()?;
        let b = bound(&mut inner)?;
        b.flags |= uapi::LO_FLAGS_AUTOCLEAR;
        if disk.openers() == 1 {
            self.start_rundown(&mut inner);
        }
        Ok(())
    }

    /// The last close: detach if asked to, as `lo_release()` and
    /// `__loop_clr_fd()`. Runs under the disk's `open_mutex`.
    pub(super) fn last_close(&self, disk: &DiskRef) {
        let mut inner = self.inner.lock();
        let binding_sysfs = match &inner.state {
            State::Bound(b) if b.flags & uapi::LO_FLAGS_AUTOCLEAR != 0 => b.sysfs,
            State::Rundown(b) => b.sysfs,
            _ => return,
        };
        // Rundown keeps opens out while the device is taken apart.
        self.start_rundown(&mut inner);
        drop(inner);

        // No opener, so no I/O in flight: no need to freeze.
        self.set_io(None);
        // As `__loop_clr_fd()` frees the idle workers.
        self.drop_cgroup_workers();
        let _ = disk.update_limits(|lim| {
            lim.set_block_size(512);
            lim.set_features(false, false);
            lim.set_discard(0, 0);
        });
        disk.invalidate();
        if binding_sysfs {
            disk.sysfs_remove();
        }
        disk.uevent_change();
        disk.force_media_change();
        // Remove all partitions, even ones added by hand with BLKPG.
        self.rescan(disk, true);
        if self.part_shift == 0 {
            disk.set_part_scan(false);
        }
        let mut inner = self.inner.lock();
        let old = self.set_state(&mut inner, State::Unbound);
        drop(inner);
        // The file reference and the module reference go outside the lock:
        // the last fput can take open_mutex.
        drop(old);
    }

    /// `LOOP_CHANGE_FD`: a new backing file of the same size for a
    /// read-only device, as `loop_change_fd()`.
    pub(super) fn change_fd(&self, disk: &DiskRef, fd: u32) -> Result {
        let file = BackingFile::from_fd(fd)?;
        check_backing_file(&file)?;
        disk.suppress_uevents(true);
        let result = self.swap_file(disk, file);
        disk.suppress_uevents(false);
        if let Ok(true) = result {
            self.rescan(disk, false);
        }
        disk.uevent_change();
        result.map(|_| ())
    }

    /// The locked part of `change_fd`; returns whether to rescan partitions.
    pub(super) fn swap_file(&self, disk: &DiskRef, file: BackingFile) -> Result<bool> {
        let mut locked = self.lock_validated(&file, disk, |inner| {
            match bound(inner)?.flags & uapi::LO_FLAGS_READ_ONLY {
                0 => Err(EINVAL),
                _ => Ok(()),
            }
        })?;
        let b = bound(&mut locked.inner)?;
        let old_size = b.file.size().unwrap_or(0);
        let new_size = file.size().unwrap_or(0);
        if uapi::device_sectors(new_size, b.offset, b.sizelimit)
            != uapi::device_sectors(old_size, b.offset, b.sizelimit)
        {
            return Err(EINVAL);
        }
        let _ = file.fsync();
        // The new file's alignment and O_DIRECT decide direct I/O afresh.
        let dio_align = dio_align_of(&file);
        let mut flags = b.flags;
        if file.opened_direct() {
            flags |= uapi::LO_FLAGS_DIRECT_IO;
        }
        let flags = dio_flags(flags, &file, dio_align, disk.logical_block_size(), b.offset);
        let direct = is_direct(flags);
        let read_only = flags & uapi::LO_FLAGS_READ_ONLY != 0;
        let io = IoConfig::new(&file, b.offset, direct, read_only)?;
        disk.force_media_change();
        let old = {
            let _frozen = disk.freeze();
            self.set_io(Some(io));
            b.flags = flags;
            b.dio_align = dio_align;
            core::mem::replace(&mut b.file, file)
        };
        let partscan = b.flags & uapi::LO_FLAGS_PARTSCAN != 0;
        drop(locked);
        // The old file goes outside the lock: its last fput can take
        // open_mutex.
        drop(old);
        Ok(partscan)
    }
}
