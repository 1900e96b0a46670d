// SPDX-License-Identifier: GPL-2.0

//! One loop device, `/dev/loopN`: its object, its states and its life
//! from creation to removal.
//!
//! What the device does lives in the files of `device/` and `io/`:
//!
//! - `device/attach.rs`: `LOOP_SET_FD`, `LOOP_CONFIGURE`, `LOOP_CHANGE_FD`,
//!   `LOOP_CLR_FD` and the detach at last close;
//! - `device/status.rs`: the status, capacity, direct I/O and block size
//!   ioctls;
//! - `device/limits.rs`: the rules for the backing file, direct I/O and the
//!   queue limits;
//! - `device/ioctl.rs`: open, release and the ioctl dispatch;
//! - `device/sysfs.rs`: the `loop/` sysfs directory;
//! - [`crate::io`]: a request's path from `queue_rq` to its end.

mod attach;
pub(crate) use attach::init_chain_lock;
mod ioctl;
mod limits;
mod status;
mod sysfs;

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use kernel::{
    debugfs::{Dir, Scope},
    new_mutex, new_spinlock,
    prelude::*,
    str::CString,
    sync::{Arc, Mutex, MutexGuard, SpinLock},
    workqueue::{new_work, Work},
};

use crate::direct_io::DioAlign;
use crate::io::{Batch, CgroupWorker};
use crate::io_stats::IoStats;
use crate::params::Layout;
use crate::sys::{
    blk::{tag_set_flags, Disk, DiskParams, TagSet},
    file::{BackingFile, FileKind},
    workqueue::{flags as wq_flags, IoWorkqueue},
    ModuleRef,
};
use crate::uapi::{self, LO_NAME_SIZE};

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
pub(crate) struct IoConfig {
    pub(crate) file: BackingFile,
    pub(crate) offset: u64,
    /// Reads and writes go to the file as direct, asynchronous I/O.
    pub(crate) direct: bool,
    /// The file is a regular file (else a block device).
    pub(crate) regular: bool,
    /// The file honours `IOCB_NOWAIT` (`FMODE_NOWAIT`): only then is a
    /// request submitted to it from `queue_rq`.
    pub(crate) nowait: bool,
    /// The device is read-only (`LO_FLAGS_READ_ONLY`): requests that
    /// write fail, and the file is never written.
    pub(crate) read_only: bool,
}

impl IoConfig {
    fn new(file: &BackingFile, offset: u64, direct: bool, read_only: bool) -> Result<Arc<Self>> {
        Arc::new(
            Self {
                file: file.clone_ref(),
                offset,
                direct,
                regular: matches!(file.kind(), FileKind::Regular),
                nowait: file.honours_nowait(),
                read_only,
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
    /// The device's workqueue, `loopN`, where each request that needs a
    /// worker is its own work item, except those of the batching workers
    /// (`batch`, `cgroup_workers`). Its own, as C's: a stacked device's
    /// work never queues behind the device below's on a shared rescuer,
    /// and it freezes for suspend. Unlike C's it has a rescuer
    /// (`WQ_MEM_RECLAIM`): writeback of what sits on the device waits for
    /// its work. It is not dropped from one of its own work items, which
    /// hold the device (`submit_work`, a [`CgroupWorker`]'s): each removal
    /// flushes it first (see [`LoopDevice::flush_workers`]).
    pub(crate) wq: IoWorkqueue,
    /// The root cgroup's direct reads and writes and buffered writes for
    /// the worker, which `submit_work` takes in batches (see
    /// [`LoopDevice::to_worker`]).
    pub(crate) batch: Batch,
    /// Queued on `wq` by whoever adds to `batch` while it is disarmed, and
    /// holding a reference to the device until it has run.
    #[pin]
    pub(crate) submit_work: Work<LoopDevice>,
    /// The batching workers of the other cgroups with requests for a
    /// worker, as C's `worker_tree`: a few, each looked up by its cgroup's
    /// id. Each holds a reference to the device, which the detach and the
    /// removal drop ([`LoopDevice::drop_cgroup_workers`]).
    #[pin]
    pub(crate) cgroup_workers: SpinLock<KVec<Arc<CgroupWorker>>>,
    /// Writes handed to a worker that it has not started yet: while there
    /// are any, writes to a regular file are not tried with `NOWAIT`.
    /// Counted down when the worker starts one, before it can end: counted
    /// down after, the write's completion could let the submitter's next
    /// write see it still up, and skip `NOWAIT` at depth 1.
    pub(crate) worker_writes: AtomicU32,
    /// Direct reads and writes are first tried from `queue_rq` with
    /// `IOCB_NOWAIT` (the `nowait` module parameter, and the device's
    /// `loop/nowait` in sysfs).
    pub(crate) nowait: AtomicBool,
    /// The debugfs counters and fault knob.
    #[pin]
    pub(crate) stats: Scope<IoStats>,
    /// Freed after the disk, when the last reference goes.
    #[pin]
    tag_set: TagSet<LoopDevice>,
}

impl LoopDevice {
    /// Makes the device object of `loopN` with its tag set and workqueue;
    /// no disk yet. Its debugfs directory goes under `debugfs`; `config` is
    /// the initial setting of `NOWAIT` submission.
    pub(crate) fn new(
        index: u32,
        layout: &Layout,
        debugfs: &Dir,
        config: NowaitConfig,
    ) -> Result<Arc<Self>> {
        let name = CString::try_from_fmt(fmt!("loop{index}"))?;
        // As C's `loop%d` (`WQ_UNBOUND | WQ_FREEZABLE`), with a rescuer.
        let wq = IoWorkqueue::new(
            &name,
            wq_flags::UNBOUND | wq_flags::FREEZABLE | wq_flags::MEM_RECLAIM,
        )?;
        Arc::pin_init(
            try_pin_init!(Self {
                index,
                part_shift: layout.part_shift,
                phase: AtomicU8::new(Phase::Unbound as u8),
                inner <- new_mutex!(Inner { state: State::Unbound, disk: None }),
                io <- new_spinlock!(None),
                wq,
                batch: Batch::new(),
                submit_work <- new_work!("LoopDevice::submit_work"),
                cgroup_workers <- new_spinlock!(KVec::new()),
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

    /// The device lock, for an open or an ioctl: a fatal signal ends the
    /// wait with `EINTR`, as C's `mutex_lock_killable(&lo->lo_mutex)`. An
    /// ioctl may hold the lock across a queue freeze, which waits for slow
    /// backing I/O; a killed waiter need not.
    fn lock_killable(&self) -> Result<MutexGuard<'_, Inner>> {
        crate::sys::sync::lock_killable(&self.inner)
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
            .map(|io| IoConfig::new(&io.file, offset, direct, io.read_only))
            .transpose()
    }

    /// Marks the device as going away if nothing uses it, as the check in
    /// `loop_control_remove()` does: it must be unbound and not open.
    ///
    /// On success the disk is handed back, to be dropped outside any lock.
    pub(crate) fn start_removal(&self) -> Result<Option<Disk<LoopDevice>>> {
        let mut inner = self.lock_killable()?;
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
    /// bound device holds a module reference. Its work items have returned
    /// when this does (see [`LoopDevice::flush_workers`]).
    pub(crate) fn remove_for_exit(&self) {
        let disk = {
            let mut inner = self.inner.lock();
            self.set_state(&mut inner, State::Deleting);
            inner.disk.take()
        };
        drop(disk);
        self.flush_workers();
    }

    /// Waits for the work items on the device's workqueue to return, once
    /// its disk is gone and no more can be queued. Until then a work item
    /// may still hold the device (`submit_work` and a [`CgroupWorker`] do,
    /// between ending their last request and returning), and dropping the
    /// last reference there would destroy the workqueue from one of its own
    /// work items, which waits for itself. After it, the remover's
    /// reference is the last one a work item could have held. Then the
    /// cgroups' workers, idle now, are dropped with their references to
    /// the device.
    pub(crate) fn flush_workers(&self) {
        self.wq.flush();
        self.drop_cgroup_workers();
    }

    /// The I/O configuration, for requests in flight: it cannot change
    /// under them (see the type invariant), so one read serves a batch.
    pub(crate) fn current_io(&self) -> Option<Arc<IoConfig>> {
        self.io.lock().clone()
    }
}
