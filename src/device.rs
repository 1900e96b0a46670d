// SPDX-License-Identifier: GPL-2.0

//! One loop device: `/dev/loopN`, its state, its ioctls and its queue.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use kernel::{
    debugfs::{Dir, Scope},
    new_mutex, new_spinlock, pr_warn,
    prelude::*,
    str::CString,
    sync::{Arc, ArcBorrow, Mutex, SpinLock},
    uaccess::{UserPtr, UserSlice},
    workqueue::{self, new_work, Work},
};

use crate::direct_io::DioAlign;
use crate::io_stats::IoStats;
use crate::params::Layout;
use crate::sys::{
    self,
    blk::{
        driver_behind, tag_set_flags, BdevRef, BlkStatus, CachedRead, DirectMode, Disk, DiskDriver,
        DiskParams, DiskRef, DiskSysfs, IoWorkqueue, Limits, OpenMode, ReqOp, Request, RequestList,
        SysfsAttr, SysfsValue, TagSet,
    },
    file::{falloc, BackingFile, FileKind},
    ModuleRef,
};
use crate::uapi::{self, InfoError, LoopConfig, LoopInfo, LoopInfo64, LO_NAME_SIZE};

/// What `queue_rq` may read without the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// No backing file; I/O fails.
    Unbound = 0,
    /// Attached.
    Bound = 1,
    /// Detaching: no new opens.
    Rundown = 2,
    /// Being removed.
    Deleting = 3,
}

/// The settings of a bound device.
struct Binding {
    file: BackingFile,
    offset: u64,
    sizelimit: u64,
    flags: u32,
    file_name: [u8; LO_NAME_SIZE],
    /// The backing file's direct I/O alignment.
    dio_align: DioAlign,
    /// Whether the `loop/` sysfs directory was added.
    sysfs: bool,
    /// As in C, a bound device pins the module.
    _module: ModuleRef<crate::LocalModule>,
}

/// The device's state, behind its lock.
enum State {
    Unbound,
    Bound(Binding),
    /// `LOOP_CLR_FD` or autoclear is detaching it.
    Rundown(Binding),
    Deleting,
}

impl State {
    fn phase(&self) -> Phase {
        match self {
            State::Unbound => Phase::Unbound,
            State::Bound(_) => Phase::Bound,
            State::Rundown(_) => Phase::Rundown,
            State::Deleting => Phase::Deleting,
        }
    }
}

/// What the I/O worker needs, swapped as a whole with the queue frozen.
struct IoConfig {
    file: BackingFile,
    offset: u64,
    discard: bool,
    /// Reads and writes go to the file as direct, asynchronous I/O.
    direct: bool,
    /// The file is a regular file (else a block device).
    regular: bool,
}

impl IoConfig {
    fn new(file: &BackingFile, offset: u64, discard: bool, direct: bool) -> Result<Arc<Self>> {
        Arc::new(
            Self {
                file: file.clone_ref(),
                offset,
                discard,
                direct,
                regular: matches!(file.kind(), FileKind::Regular),
            },
            GFP_KERNEL,
        )
        .map_err(Into::into)
    }
}

/// What the device lock protects.
struct Inner {
    state: State,
    /// The disk, from `add_disk` until removal takes it away.
    disk: Option<Disk<LoopDevice>>,
}

/// How a device uses `NOWAIT` submission: at all (`on`), and with at most
/// `depth` submissions in flight (0: no limit).
#[derive(Clone, Copy)]
pub(crate) struct NowaitConfig {
    pub(crate) on: bool,
    pub(crate) depth: u32,
}

/// A loop device.
///
/// # Invariants
///
/// - `phase` mirrors `inner.state` and only changes with `inner` locked.
/// - `io` is `Some` only while bound, and changes only with the queue
///   frozen or the device not open.
#[pin_data]
pub(crate) struct LoopDevice {
    index: u32,
    part_shift: u32,
    phase: AtomicU8,
    #[pin]
    inner: Mutex<Inner>,
    #[pin]
    io: SpinLock<Option<Arc<IoConfig>>>,
    /// The module's workqueue, where each request that needs a worker is
    /// its own work item, except those of `submit_list`.
    wq: Arc<IoWorkqueue>,
    /// Direct reads and writes and buffered writes for the worker, which
    /// `submit_work` takes in batches (see [`LoopDevice::to_worker`]).
    submit_list: RequestList,
    /// Queued on `wq` by whoever finds `submit_list` empty while
    /// `submit_armed` is clear, and holding a reference to the device
    /// until it has run.
    #[pin]
    submit_work: Work<LoopDevice>,
    /// Set while `submit_work` is queued or running and will look at
    /// `submit_list` again before it returns: requests added meanwhile
    /// need no queueing. Queueing a running work item again would wake an
    /// idle worker thread of the unbound workqueue only for it to hand the
    /// item back to the thread running it: two context switches for
    /// nothing.
    submit_armed: AtomicBool,
    /// Writes handed to a worker that it has not started yet: while there
    /// are any, writes to a regular file are not tried with `NOWAIT`.
    /// Counted down when the worker starts one, before it can end: counted
    /// down after, the write's completion could let the submitter's next
    /// write see it still up, and skip `NOWAIT` at depth 1.
    worker_writes: AtomicU32,
    /// Direct reads and writes are first tried from `queue_rq` with
    /// `IOCB_NOWAIT` (the `nowait` module parameter, and the device's
    /// `loop/nowait` in sysfs).
    nowait: AtomicBool,
    /// The debugfs counters and fault knob.
    #[pin]
    stats: Scope<IoStats>,
    /// Freed after the disk, when the last reference goes.
    #[pin]
    tag_set: TagSet<LoopDevice>,
}

impl LoopDevice {
    /// Makes the device object of `loopN` with its tag set; no disk yet.
    /// Its debugfs directory goes under `debugfs`; `config` is the initial
    /// setting of `NOWAIT` submission; requests that need a worker go to
    /// `wq`.
    pub(crate) fn new(
        index: u32,
        layout: &Layout,
        debugfs: &Dir,
        config: NowaitConfig,
        wq: Arc<IoWorkqueue>,
    ) -> Result<Arc<Self>> {
        let name = CString::try_from_fmt(fmt!("loop{index}"))?;
        Arc::pin_init(
            try_pin_init!(Self {
                index,
                part_shift: layout.part_shift,
                phase: AtomicU8::new(Phase::Unbound as u8),
                inner <- new_mutex!(Inner { state: State::Unbound, disk: None }),
                io <- new_spinlock!(None),
                wq,
                submit_list: RequestList::new(),
                submit_work <- new_work!("LoopDevice::submit_work"),
                submit_armed: AtomicBool::new(false),
                worker_writes: AtomicU32::new(0),
                nowait: AtomicBool::new(config.on),
                stats <- IoStats::new(debugfs, &name, config.depth),
                // Blocking: `queue_rq` calls into the backing file's
                // filesystem, which allocates and takes sleeping locks even
                // with `IOCB_NOWAIT`.
                tag_set <- TagSet::new(
                    layout.nr_hw_queues,
                    layout.hw_queue_depth,
                    tag_set_flags::STACKING
                        | tag_set_flags::NO_SCHED_BY_DEFAULT
                        | tag_set_flags::BLOCKING,
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
                // As the C driver since 6.x: writeback throttling on the
                // loop queue can wait on the loop device's own writeback.
                writeback_throttling: false,
            },
        )?;
        self.inner.lock().disk = Some(disk);
        Ok(())
    }

    /// The device index, N of `/dev/loopN`.
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// The current phase, read without the lock; it may change at once.
    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Unbound,
            1 => Phase::Bound,
            2 => Phase::Rundown,
            _ => Phase::Deleting,
        }
    }

    fn set_state(&self, inner: &mut Inner, state: State) -> State {
        self.phase.store(state.phase() as u8, Ordering::Relaxed);
        core::mem::replace(&mut inner.state, state)
    }

    /// Moves a bound device to `Rundown`, keeping its binding. Only the
    /// new phase is published: `queue_rq` reads the phase without the
    /// lock, and a passing `Unbound` would fail its requests.
    fn start_rundown(&self, inner: &mut Inner) {
        // The placeholder is seen by no one: the lock is held and the
        // phase is not stored until the new state is in.
        let state = match core::mem::replace(&mut inner.state, State::Unbound) {
            State::Bound(b) => State::Rundown(b),
            other => other,
        };
        self.set_state(inner, state);
    }

    fn set_io(&self, io: Option<Arc<IoConfig>>) {
        *self.io.lock() = io;
    }

    /// A new I/O snapshot like the current one but for `offset` and
    /// `direct`, made before the queue is frozen so that failing changes
    /// nothing. The current one is cloned first, so that the spinlock is
    /// not held across the allocation.
    fn remake_io(&self, offset: u64, direct: bool) -> Result<Option<Arc<IoConfig>>> {
        let current = self.io.lock().clone();
        current
            .map(|io| IoConfig::new(&io.file, offset, io.discard, direct))
            .transpose()
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
        if self.phase() != Phase::Unbound || busy {
            return Err(EBUSY);
        }
        self.set_state(&mut inner, State::Deleting);
        Ok(inner.disk.take())
    }

    /// Takes the device down for module exit. Nothing is open or bound: a
    /// bound device holds a module reference. The workers' code goes with
    /// the module: the workqueue waits for them when it goes, after every
    /// device.
    pub(crate) fn remove_for_exit(&self) {
        let disk = {
            let mut inner = self.inner.lock();
            self.set_state(&mut inner, State::Deleting);
            inner.disk.take()
        };
        drop(disk);
    }

    // --- attach -------------------------------------------------------------

    /// `LOOP_SET_FD` and `LOOP_CONFIGURE`, as `loop_configure()`.
    fn configure(&self, disk: &DiskRef, mode: OpenMode, config: &LoopConfig) -> Result {
        let file = BackingFile::from_fd(config.fd)?;
        check_backing_file(&file)?;
        // The errno order of C: EBUSY before the checks of the file. The
        // chain is walked without this device's lock, which would nest
        // with the others', and the state is checked again after.
        if !matches!(self.inner.lock().state, State::Unbound) {
            return Err(EBUSY);
        }
        self.validate_chain(&file, disk)?;

        let mut inner = self.inner.lock();
        if !matches!(inner.state, State::Unbound) {
            return Err(EBUSY);
        }
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
            dio_align.default_block_size(flags & uapi::LO_FLAGS_DIRECT_IO != 0)
        };
        // Direct I/O that is not possible is dropped silently, as
        // `loop_update_dio()` does; LOOP_GET_STATUS shows what is in effect.
        if !can_use_dio(&file, dio_align, bsize, config.info.lo_offset) {
            flags &= !uapi::LO_FLAGS_DIRECT_IO;
        }
        let direct = flags & uapi::LO_FLAGS_DIRECT_IO != 0;
        let limits = BoundLimits::new(&file, flags, bsize, dio_align);
        // Allocated before anything changes, so that failing leaves no trace.
        let io = IoConfig::new(
            &file,
            config.info.lo_offset,
            limits.discard_sectors != 0,
            direct,
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
        self.set_state(&mut inner, State::Bound(binding));
        if partscan {
            disk.set_part_scan(true);
        }
        disk.suppress_uevents(false);
        disk.uevent_change();
        drop(inner);
        if partscan {
            self.rescan(disk, false);
        }
        Ok(())
    }

    /// Refuses the device itself, and chains of loop devices that are not
    /// all bound, as `loop_validate_file()`.
    fn validate_chain(&self, file: &BackingFile, disk: &DiskRef) -> Result {
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

    fn rescan(&self, disk: &DiskRef, open_mutex_held: bool) {
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
    fn clr_fd(&self, disk: &DiskRef) -> Result {
        let mut inner = self.inner.lock();
        let State::Bound(b) = &mut inner.state else {
            return Err(ENXIO);
        };
        b.flags |= uapi::LO_FLAGS_AUTOCLEAR;
        if disk.openers() == 1 {
            self.start_rundown(&mut inner);
        }
        Ok(())
    }

    /// The last close: detach if asked to, as `lo_release()` and
    /// `__loop_clr_fd()`. Runs under the disk's `open_mutex`.
    fn last_close(&self, disk: &DiskRef) {
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
    fn change_fd(&self, disk: &DiskRef, fd: u32) -> Result {
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
    fn swap_file(&self, disk: &DiskRef, file: BackingFile) -> Result<bool> {
        {
            let inner = self.inner.lock();
            let State::Bound(b) = &inner.state else {
                return Err(ENXIO);
            };
            if b.flags & uapi::LO_FLAGS_READ_ONLY == 0 {
                return Err(EINVAL);
            }
        }
        self.validate_chain(&file, disk)?;
        let mut inner = self.inner.lock();
        let State::Bound(b) = &mut inner.state else {
            return Err(ENXIO);
        };
        if b.flags & uapi::LO_FLAGS_READ_ONLY == 0 {
            return Err(EINVAL);
        }
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
        if !can_use_dio(&file, dio_align, disk.logical_block_size(), b.offset) {
            flags &= !uapi::LO_FLAGS_DIRECT_IO;
        }
        let direct = flags & uapi::LO_FLAGS_DIRECT_IO != 0;
        let io = IoConfig::new(&file, b.offset, discard_limits(&file).0 != 0, direct)?;
        disk.force_media_change();
        let old = {
            let _frozen = disk.freeze();
            self.set_io(Some(io));
            b.flags = flags;
            b.dio_align = dio_align;
            core::mem::replace(&mut b.file, file)
        };
        let partscan = b.flags & uapi::LO_FLAGS_PARTSCAN != 0;
        drop(inner);
        // The old file goes outside the lock: its last fput can take
        // open_mutex.
        drop(old);
        Ok(partscan)
    }

    // --- status -------------------------------------------------------------

    /// `LOOP_SET_STATUS64`, as `loop_set_status()`.
    fn set_status(&self, disk: &DiskRef, info: &LoopInfo64) -> Result {
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
    fn get_status(&self) -> Result<LoopInfo64> {
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
    fn set_capacity(&self, disk: &DiskRef) -> Result {
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
    fn set_direct_io(&self, disk: &DiskRef, arg: usize) -> Result {
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
    fn set_block_size(&self, disk: &DiskRef, arg: usize) -> Result {
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

    // --- I/O ----------------------------------------------------------------

    /// Runs one request against the backing file, as `do_req_filebacked()`
    /// does: to its end for buffered I/O, or until it is submitted for
    /// direct I/O.
    fn handle(io: &IoConfig, rq: Request) {
        // A flush has no position (its sector is all ones), so the sum may
        // wrap; it is only used by the operations that have one.
        let pos = rq.pos().wrapping_add(io.offset);
        let bytes = rq.bytes();
        let result = match rq.op() {
            ReqOp::Flush => io
                .file
                .fsync()
                .map_err(|e| if e == EINVAL { e } else { EIO }),
            ReqOp::Discard => Self::fallocate(io, falloc::PUNCH_HOLE, pos, bytes),
            ReqOp::WriteZeroes => {
                let mode = if rq.no_unmap() {
                    falloc::ZERO_RANGE
                } else {
                    falloc::PUNCH_HOLE
                };
                Self::fallocate(io, mode, pos, bytes)
            }
            ReqOp::Read | ReqOp::Write if io.direct => {
                // Ends in `direct_done`.
                let write = rq.op() == ReqOp::Write;
                let submitted =
                    rq.submit_direct::<Self>(io.file.clone_ref(), pos, write, DirectMode::Blocking);
                // A blocking submission always takes the request.
                if let Err(rq) = submitted {
                    rq.end(BlkStatus::io_error());
                }
                return;
            }
            ReqOp::Write => {
                let result = rq.transfer(&io.file, pos, true);
                return Self::finish_rw(rq, result);
            }
            ReqOp::Read => {
                let result = rq.transfer(&io.file, pos, false);
                return Self::finish_rw(rq, result);
            }
            ReqOp::Other => Err(EIO),
        };
        rq.end(match result {
            Ok(()) => BlkStatus::OK,
            Err(e) => BlkStatus::from_error(e),
        });
    }

    /// Ends a read or write that moved `result` bytes, buffered or direct,
    /// as `lo_complete_rq()`. A short write is not an error, as in C.
    fn finish_rw(rq: Request, result: Result<usize>) {
        let status = match result {
            Ok(n) if n == rq.bytes() as usize || rq.op() != ReqOp::Read => BlkStatus::OK,
            // Short read: finish what was read and retry the rest.
            Ok(n) if n > 0 => return rq.advance_and_requeue(n as u32),
            // Nothing left to read (past the end of the file).
            Ok(_) => {
                rq.zero_fill();
                BlkStatus::io_error()
            }
            Err(e) => BlkStatus::from_error(e),
        };
        rq.end(status);
    }

    /// Tries a direct read or write from `queue_rq` with `IOCB_NOWAIT`, or
    /// a buffered read from the page cache ([`LoopDevice::read_cached`]),
    /// so that it costs no switch to the worker. Returns the request if it
    /// was not submitted, for the worker.
    ///
    /// Only when it is worth it: direct reads, and direct writes to a block
    /// device or to a regular file with no write waiting for the worker
    /// (writes that allocate blocks get `EAGAIN`, and so would the ones
    /// after them), only on a queue that is nearly idle (`nowait_depth`);
    /// small buffered reads. Never from inside a filesystem transaction or
    /// memory reclaim.
    fn try_nowait(&self, io: &IoConfig, rq: Request) -> Option<Request> {
        let write = match rq.op() {
            ReqOp::Read => false,
            ReqOp::Write => true,
            _ => return Some(rq),
        };
        if !self.nowait.load(Ordering::Relaxed) || !sys::may_submit_inline() {
            return Some(rq);
        }
        if !io.direct {
            if write || !io.file.async_buffered_reads() {
                return Some(rq);
            }
            return self.read_cached(io, rq);
        }
        if write && io.regular && self.worker_writes.load(Ordering::Relaxed) > 0 {
            return Some(rq);
        }
        let Some(slot) = self.stats.nowait_slot(rq.queue_busy()) else {
            return Some(rq);
        };
        let pos = rq.pos() + io.offset;
        let mode = self.stats.nowait_mode();
        let _scope = sys::InlineSubmitScope::enter();
        match rq.submit_direct::<Self>(io.file.clone_ref(), pos, write, mode) {
            Ok(()) => {
                slot.submitted();
                None
            }
            Err(rq) => Some(rq),
        }
    }

    /// Reads `rq` from the page cache from `queue_rq`, without waiting for
    /// the backing file's I/O: a request that must wait for a page waits
    /// for it asynchronously, and then goes to the worker, which finds its
    /// data cached (`page_ready`). Returns the request if it was neither
    /// read nor left waiting, for the worker.
    ///
    /// Only small reads, at any queue depth: copying a few pages costs less
    /// than the hand-off to the worker, and a miss costs only the start of
    /// its read. A large read is faster in the worker, even one at a time:
    /// its copy there runs beside the completions of the backing file's
    /// readahead on the submitter's CPU (in one TCG boot, sequential 1 MiB
    /// reads fell from 519–546 to 402–419 IOPS when copied here).
    fn read_cached(&self, io: &IoConfig, rq: Request) -> Option<Request> {
        if rq.bytes() > SMALL_READ {
            return Some(rq);
        }
        let pos = rq.pos() + io.offset;
        let _scope = sys::InlineSubmitScope::enter();
        match rq.read_cached::<Self>(&io.file, pos) {
            CachedRead::Done(rq) => {
                self.stats.cached_read();
                let bytes = rq.bytes() as usize;
                Self::finish_rw(rq, Ok(bytes));
                None
            }
            CachedRead::Waiting => {
                self.stats.page_wait();
                None
            }
            CachedRead::NotDone(rq) => Some(rq),
        }
    }

    /// Hands `rq` to a worker. Any context.
    ///
    /// With `batch` it goes on `submit_list`, which one work item at a
    /// time takes in batches, in order, as the C driver's worker takes its
    /// list. `queue_rq` batches direct reads and writes, whose submission
    /// seldom blocks for long, and buffered writes to a regular file, which
    /// all take the file's `i_rwsem` exclusively and so gain nothing from
    /// running at once but contention. A work item each would also wake a
    /// worker thread each: on an unbound workqueue, every work item queued
    /// wakes an idle worker. The rest (buffered reads, flushes, discards)
    /// and `NOWAIT` fallbacks, which may well block, are each a work item
    /// of their own (`run_queued`), and run concurrently.
    fn to_worker(this: ArcBorrow<'_, Self>, rq: Request, batch: bool) {
        if rq.op() == ReqOp::Write {
            this.worker_writes.fetch_add(1, Ordering::Relaxed);
        }
        if !batch {
            return rq.queue_work::<Self>(&this.wq);
        }
        // Both are full barriers (`llist_add` and the swap), and so are the
        // worker's swap and `take_all` when it disarms: either this sees
        // the worker still armed, and the worker then finds `rq`, or the
        // worker is disarmed and this queues it again.
        if this.submit_list.push(rq) && !this.submit_armed.swap(true, Ordering::SeqCst) {
            // Already pending is fine: a run queued by an adder while the
            // last run disarmed, which takes the list.
            let _ = this.wq.queue().enqueue(Arc::from(this));
        }
    }

    /// Runs a request handed to a worker, in a [`sys::WorkerScope`], with
    /// the device's I/O configuration `io` (see [`LoopDevice::current_io`]).
    fn run_worker(&self, io: Option<&IoConfig>, rq: Request) {
        let _running = self.stats.worker_io();
        if rq.op() == ReqOp::Write {
            self.worker_writes.fetch_sub(1, Ordering::Relaxed);
        }
        match io {
            Some(io) => Self::handle(io, rq),
            None => rq.end(BlkStatus::io_error()),
        }
    }

    /// The I/O configuration, for requests in flight: it cannot change
    /// under them (see the type invariant), so one read serves a batch.
    fn current_io(&self) -> Option<Arc<IoConfig>> {
        self.io.lock().clone()
    }

    fn fallocate(io: &IoConfig, mode: i32, pos: u64, len: u32) -> Result {
        if !io.discard {
            return Err(EOPNOTSUPP);
        }
        match io.file.fallocate(mode | falloc::KEEP_SIZE, pos, len.into()) {
            Err(e) if e != EINVAL && e != EOPNOTSUPP => Err(EIO),
            other => other,
        }
    }
}

/// The largest buffered read that [`LoopDevice::read_cached`] tries from
/// `queue_rq`: four pages.
const SMALL_READ: u32 = 16 * 1024;

/// The backing file's operations, as `loop_check_backing_file()`.
fn check_backing_file(file: &BackingFile) -> Result {
    if !file.has_read_iter() || (file.opened_for_write() && !file.has_write_iter()) {
        return Err(EINVAL);
    }
    Ok(())
}

/// The direct I/O alignment of `file`, as `loop_update_dio_alignment()`.
fn dio_align_of(file: &BackingFile) -> DioAlign {
    DioAlign::choose(
        file.statx_dio_align(),
        file.fs_bdev_align(),
        kernel::page::PAGE_SIZE as u32,
    )
}

/// `lo_can_use_dio()`: the file supports `O_DIRECT`, and a device of logical
/// block size `bsize` at `offset` meets its alignment.
fn can_use_dio(file: &BackingFile, align: DioAlign, bsize: u32, offset: u64) -> bool {
    file.can_direct_io() && align.allows(bsize, offset)
}

fn check_info(info: &LoopInfo64) -> Result {
    match info.check() {
        Ok(()) => Ok(()),
        Err(InfoError::Overflow) => Err(EOVERFLOW),
        Err(InfoError::XorRemoved) => {
            pr_warn!("support for the xor transformation has been removed.\n");
            Err(EINVAL)
        }
        Err(InfoError::CryptoapiRemoved) => {
            pr_warn!("support for cryptoloop has been removed.  Use dm-crypt instead.\n");
            Err(EINVAL)
        }
        Err(InfoError::Invalid) => Err(EINVAL),
    }
}

/// The queue limits of a bound device, as `loop_update_limits()` sets them:
/// worked out before the queue is frozen, applied while it is.
struct BoundLimits {
    bsize: u32,
    dma_alignment: u32,
    discard_sectors: u32,
    discard_granularity: u32,
    write_cache: bool,
    rotational: bool,
}

impl BoundLimits {
    fn new(file: &BackingFile, flags: u32, bsize: u32, dio_align: DioAlign) -> Self {
        let (discard_sectors, discard_granularity) = discard_limits(file);
        Self {
            bsize,
            dma_alignment: dio_align.dma_alignment(flags & uapi::LO_FLAGS_DIRECT_IO != 0),
            discard_sectors,
            discard_granularity,
            // Flushes reach the driver only with a write cache.
            write_cache: file.has_fsync() && flags & uapi::LO_FLAGS_READ_ONLY == 0,
            rotational: file.rotational(),
        }
    }

    fn apply(&self, lim: &mut Limits) {
        lim.set_block_size(self.bsize);
        lim.set_dma_alignment(self.dma_alignment);
        lim.set_features(self.write_cache, self.rotational);
        lim.set_discard(self.discard_sectors, self.discard_granularity);
    }
}

/// Discard limits from the backing file, as `loop_get_discard_config()`:
/// a block device's zeroing limits, or for a regular file punched holes in
/// units of the filesystem block.
fn discard_limits(file: &BackingFile) -> (u32, u32) {
    if let Some(limits) = file.bdev_zeroing_limits() {
        return limits;
    }
    match file.kind() {
        FileKind::Regular if file.has_fallocate() => match file.fs_block_size() {
            Ok(bsize) => (u32::MAX >> 9, bsize),
            Err(_) => (0, 0),
        },
        _ => (0, 0),
    }
}

fn capacity(b: &Binding) -> u64 {
    let size = b.file.size().unwrap_or(0);
    uapi::device_sectors(size, b.offset, b.sizelimit)
}

fn user_arg(arg: usize) -> Result<usize> {
    if arg == 0 {
        return Err(EINVAL);
    }
    Ok(arg)
}

impl DiskSysfs for LoopDevice {
    fn show(
        this: ArcBorrow<'_, Self>,
        attr: SysfsAttr,
        emit: &mut dyn FnMut(SysfsValue<'_>) -> isize,
    ) -> Result<isize> {
        let inner = this.inner.lock();
        let b = match &inner.state {
            State::Bound(b) | State::Rundown(b) => Some(b),
            State::Unbound | State::Deleting => None,
        };
        let flag = |f: u32| u64::from(b.is_some_and(|b| b.flags & f != 0));
        Ok(match attr {
            SysfsAttr::BackingFile => match b {
                Some(b) => emit(SysfsValue::Path(&b.file)),
                None => 0,
            },
            SysfsAttr::Offset => emit(SysfsValue::Number(b.map_or(0, |b| b.offset))),
            SysfsAttr::Sizelimit => emit(SysfsValue::Number(b.map_or(0, |b| b.sizelimit))),
            SysfsAttr::Autoclear => emit(SysfsValue::Number(flag(uapi::LO_FLAGS_AUTOCLEAR))),
            SysfsAttr::Partscan => emit(SysfsValue::Number(flag(uapi::LO_FLAGS_PARTSCAN))),
            SysfsAttr::Dio => emit(SysfsValue::Number(flag(uapi::LO_FLAGS_DIRECT_IO))),
            SysfsAttr::Nowait => emit(SysfsValue::Number(u64::from(
                this.nowait.load(Ordering::Relaxed),
            ))),
        })
    }

    fn store(this: ArcBorrow<'_, Self>, attr: SysfsAttr, input: &[u8]) -> Result {
        match attr {
            SysfsAttr::Nowait => {
                let on = crate::params::parse_switch(input).ok_or(EINVAL)?;
                this.nowait.store(on, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(EACCES),
        }
    }
}

impl DiskDriver for LoopDevice {
    type Owner = crate::LocalModule;

    fn open(this: ArcBorrow<'_, Self>, _disk: &DiskRef) -> Result {
        let _guard = this.inner.lock();
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
        let may_change = mode.write() || sys::capable_sys_admin();
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
                let config: LoopConfig =
                    UserSlice::new(UserPtr::from_addr(arg), size_of::<LoopConfig>())
                        .reader()
                        .read()?;
                let _claim = claim()?;
                this.configure(disk, mode, &config)?;
            }
            uapi::LOOP_CLR_FD => this.clr_fd(disk)?,
            uapi::LOOP_CHANGE_FD => this.change_fd(disk, arg as u32)?,
            uapi::LOOP_SET_STATUS | uapi::LOOP_SET_STATUS64 if !may_change => return Err(EPERM),
            uapi::LOOP_SET_STATUS => {
                let old: LoopInfo = UserSlice::new(UserPtr::from_addr(arg), size_of::<LoopInfo>())
                    .reader()
                    .read()?;
                this.set_status(disk, &LoopInfo64::from_old(&old))?;
            }
            uapi::LOOP_SET_STATUS64 => {
                let info: LoopInfo64 =
                    UserSlice::new(UserPtr::from_addr(arg), size_of::<LoopInfo64>())
                        .reader()
                        .read()?;
                this.set_status(disk, &info)?;
            }
            uapi::LOOP_GET_STATUS => {
                let arg = user_arg(arg)?;
                let old = this.get_status()?.to_old().ok_or(EOVERFLOW)?;
                UserSlice::new(UserPtr::from_addr(arg), size_of::<LoopInfo>())
                    .writer()
                    .write(&old)?;
            }
            uapi::LOOP_GET_STATUS64 => {
                let arg = user_arg(arg)?;
                let info = this.get_status()?;
                UserSlice::new(UserPtr::from_addr(arg), size_of::<LoopInfo64>())
                    .writer()
                    .write(&info)?;
            }
            uapi::LOOP_SET_BLOCK_SIZE | uapi::LOOP_SET_CAPACITY | uapi::LOOP_SET_DIRECT_IO
                if !may_change =>
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

    fn direct_done(this: ArcBorrow<'_, Self>, rq: Request, result: Result<usize>, nowait: bool) {
        if nowait {
            this.stats.nowait_hit();
        }
        Self::finish_rw(rq, result);
    }

    fn page_ready(this: ArcBorrow<'_, Self>, rq: Request) {
        Self::to_worker(this, rq, false);
    }

    fn nowait_fallback(this: ArcBorrow<'_, Self>, rq: Request) {
        this.stats.eagain_fallback();
        Self::to_worker(this, rq, false);
    }

    /// The worker path of the requests not batched (see
    /// [`LoopDevice::to_worker`]): each runs in its own work item, so
    /// buffered reads run concurrently, each blocking only itself, with no
    /// ordering between them (the block layer asks for none: a flush
    /// covers the writes completed before it, which it follows).
    fn run_queued(this: ArcBorrow<'_, Self>, rq: Request) {
        // `this` is borrowed from the request's queue, alive only while the
        // request is: once it ends, the device may go. The work item keeps
        // its own reference for what it does after.
        let this: Arc<Self> = this.into();
        let _worker = sys::WorkerScope::enter();
        let io = this.current_io();
        this.run_worker(io.as_deref(), rq);
    }

    fn queue_rq(this: ArcBorrow<'_, Self>, rq: Request) {
        if this.phase() != Phase::Bound {
            // Not bound: fail at once, as `loop_queue_rq()` does.
            return rq.end(BlkStatus::io_error());
        }
        let io = this.current_io();
        // Bound, the device has its I/O configuration; the worker would
        // fail the request too if not.
        let Some(io) = io else {
            return rq.end(BlkStatus::io_error());
        };
        if let Some(rq) = this.try_nowait(&io, rq) {
            let batch = match rq.op() {
                ReqOp::Read => io.direct,
                ReqOp::Write => io.direct || io.regular,
                _ => false,
            };
            Self::to_worker(this, rq, batch);
        }
    }
}

kernel::impl_has_work! {
    impl HasWork<Self> for LoopDevice { self.submit_work }
}

impl workqueue::WorkItem for LoopDevice {
    type Pointer = Arc<Self>;

    /// The batching worker of `submit_list`: takes the list until it finds
    /// it empty, then disarms (`submit_armed`) and looks once more. Whoever
    /// adds to an empty list while it is disarmed queues this again, so no
    /// request is left behind, and one run at a time takes the list.
    ///
    /// Each batch of direct I/O is submitted under one block plug, so that
    /// it reaches the backing device together rather than a bio at a time.
    /// Between requests the run yields its CPU to any task due to run
    /// (`cond_resched`), as `loop_process_work()` does: under steady load
    /// it may never find the list empty.
    fn run(this: Arc<Self>) {
        let _worker = sys::WorkerScope::enter();
        this.stats.worker_batch();
        loop {
            let mut batch = this.submit_list.take_all().peekable();
            if batch.peek().is_none() {
                this.submit_armed.swap(false, Ordering::SeqCst);
                batch = this.submit_list.take_all().peekable();
                if batch.peek().is_none() {
                    return;
                }
                // Added while disarmed: this run takes the batch. If its
                // adder queued a run too, that one finds the list empty.
                this.submit_armed.swap(true, Ordering::SeqCst);
            }
            let io = this.current_io();
            let run = || {
                for rq in batch {
                    this.run_worker(io.as_deref(), rq);
                    sys::cond_resched();
                }
            };
            // The direct I/O of a batch goes to the backing device together.
            // A buffered write submits no bio of its own, so it gains nothing
            // from the plug.
            if io.as_ref().is_some_and(|io| io.direct) {
                sys::plugged(run);
            } else {
                run();
            }
        }
    }
}
