// SPDX-License-Identifier: GPL-2.0

//! The request's data to and from a file through a kiocb: synchronously
//! through the page cache ([`Request::transfer`]), or as direct,
//! asynchronous I/O whose `ki_complete` ends the request
//! ([`Request::submit_direct`]), as `lo_rw_aio()`.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h).

use super::{
    cmd::Cmd,
    request::{rloop_rq_bytes, rloop_rq_ioprio, rq_iter},
    BlkStatus, DiskDriver, Request,
};
use crate::sys::file::BackingFile;
use core::{
    mem::MaybeUninit,
    sync::atomic::{AtomicIsize, AtomicU32, Ordering},
};
use kernel::{bindings, prelude::*};

// The C helpers of `src/helpers/`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_kiocb_start_write(iocb: *mut bindings::kiocb);
    fn rloop_kiocb_end_write(iocb: *mut bindings::kiocb);
    fn rloop_kiocb_start_write_nowait(iocb: *mut bindings::kiocb) -> bool;
    fn rloop_iocb_nowait() -> c_int;
}

/// `IOCB_NOWAIT`, which bindgen cannot evaluate (a cast).
pub(super) fn iocb_nowait() -> c_int {
    // SAFETY: Returns a constant.
    unsafe { rloop_iocb_nowait() }
}

/// How [`Request::submit_direct`] submits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectMode {
    /// May block, as from a worker.
    Blocking,
    /// With `IOCB_NOWAIT`, from a context that should not wait.
    NoWait,
    /// Fault injection: as `NoWait`, but the file is not called and the
    /// submission fails at once with `EAGAIN`.
    NoWaitFailNow,
    /// Fault injection: as `NoWait`, and the I/O runs, but its result is
    /// taken as `EAGAIN` when it ends.
    NoWaitFailLater,
}

impl Request {
    /// The kiocb of every I/O of the request's data to `file` at `pos`:
    /// `flags`, the request's I/O priority, and `complete` for an
    /// asynchronous one (`None`: synchronous).
    pub(super) fn kiocb(
        &self,
        file: &BackingFile,
        pos: u64,
        flags: c_int,
        complete: Option<unsafe extern "C" fn(*mut bindings::kiocb, c_long)>,
    ) -> bindings::kiocb {
        bindings::kiocb {
            ki_filp: file.raw(),
            ki_pos: pos as bindings::loff_t,
            ki_complete: complete,
            ki_flags: flags,
            // SAFETY: By the type invariant the request is live.
            ki_ioprio: unsafe { rloop_rq_ioprio(self.raw()) },
            ..pin_init::zeroed()
        }
    }

    /// Reads into the request's data from `file` at `pos` (`write ==
    /// false`), or writes it there, synchronously through the page cache;
    /// returns the bytes moved, short at the end of the file. As C's
    /// `lo_rw_aio()` without `use_aio`, the kiocb has no flags: an
    /// `O_DIRECT` backing file is still read and written buffered here.
    /// Writes hold the file's freeze protection for the call. Gathering
    /// the bvecs of a several-bio request allocates: call this inside a
    /// [`WorkerScope`](crate::sys::task::WorkerScope).
    pub fn transfer(&self, file: &BackingFile, pos: u64, write: bool) -> Result<usize> {
        let op = file.rw_iter_op(write).ok_or(EINVAL)?;
        // SAFETY: By the type invariant the request is live; the iterator
        // is used below, while the request and `_bvecs` are.
        let (mut iter, _bvecs) = unsafe { rq_iter(self.raw(), write) }?;
        // No `ki_complete`: a synchronous kiocb.
        let mut iocb = self.kiocb(file, pos, 0, None);
        // SAFETY: The kiocb is filled in for a file the caller keeps open;
        // the iterator covers the request's pages; `op` is the file's own
        // operation. A synchronous kiocb is done when `op` returns.
        let ret = unsafe {
            if write {
                rloop_kiocb_start_write(&mut iocb);
            }
            let ret = op(&mut iocb, &mut iter.0);
            if write {
                rloop_kiocb_end_write(&mut iocb);
            }
            ret
        };
        if ret < 0 {
            Err(Error::from_errno(ret as c_int))
        } else {
            Ok(ret as usize)
        }
    }

    /// Submits the request's data as direct, asynchronous I/O to `file` at
    /// `pos`: a read (`write == false`) into the request, or a write from
    /// it, through a kiocb with `IOCB_DIRECT` in the request's own data, as
    /// `lo_rw_aio()`. Writes take the file's freeze protection until the
    /// I/O ends.
    ///
    /// Whether the filesystem finishes the I/O at once or later from its
    /// `ki_complete`, the request then goes to `blk_mq_complete_request`, and
    /// the driver `T` gets it back, exactly once, in
    /// [`QueueOperations::direct_done`](super::QueueOperations::direct_done)
    /// with the byte count or the error.
    ///
    /// With a `NoWait` `mode` the kiocb also has `IOCB_NOWAIT`, and the freeze
    /// protection is only tried. If it cannot be had, the file has no operation
    /// for it, or the bvecs of a several-bio request cannot be gathered,
    /// nothing is submitted and the request comes back as `Err`. Once
    /// submitted, any result but the whole request done (`EAGAIN` above all,
    /// but also an error or a short count, which a blocking retry then settles)
    /// gives the request back in
    /// [`QueueOperations::nowait_fallback`](super::QueueOperations::nowait_fallback)
    /// instead, with everything the attempt held released.
    ///
    /// Gathering the bvecs of a several-bio request allocates: call this
    /// inside a [`WorkerScope`](crate::sys::task::WorkerScope) or an
    /// [`InlineSubmitScope`](crate::sys::task::InlineSubmitScope).
    pub fn submit_direct<T: DiskDriver>(
        self,
        file: BackingFile,
        pos: u64,
        write: bool,
        mode: DirectMode,
    ) -> Result<(), Request> {
        let nowait = mode != DirectMode::Blocking;
        let Some(op) = file.rw_iter_op(write) else {
            if nowait {
                return Err(self);
            }
            self.end(BlkStatus::io_error());
            return Ok(());
        };
        // SAFETY: By the type invariant the request is live.
        let (mut iter, bvecs) = match unsafe { rq_iter(self.raw(), write) } {
            Ok(it) => it,
            Err(_) if nowait => return Err(self),
            Err(_) => {
                self.end(BlkStatus::io_error());
                return Ok(());
            }
        };
        let mut flags = bindings::IOCB_DIRECT as c_int;
        if nowait {
            flags |= iocb_nowait();
        }
        let iocb = self.kiocb(&file, pos, flags, Some(Cmd::ki_complete::<T>));
        let raw = self.raw();
        // SAFETY: The request is live and owned by the driver, so its
        // command is ours to fill; nothing else uses it until the kiocb is
        // submitted below. Every field is written before it is read.
        let cmd = unsafe {
            let cmd = Cmd::of(raw);
            (&raw mut (*cmd).iocb).write(iocb);
            (&raw mut (*cmd).refs).write(AtomicU32::new(2));
            (&raw mut (*cmd).ret).write(AtomicIsize::new(0));
            (&raw mut (*cmd).nowait).write(nowait);
            (&raw mut (*cmd).fail_late).write(mode == DirectMode::NoWaitFailLater);
            cmd
        };
        if write {
            // SAFETY: The kiocb is filled in, for a file the caller holds.
            unsafe {
                if !nowait {
                    rloop_kiocb_start_write(&raw mut (*cmd).iocb);
                } else if !rloop_kiocb_start_write_nowait(&raw mut (*cmd).iocb) {
                    // Frozen: not submitted, and the command is unused.
                    return Err(self);
                }
            }
        }
        // From here the command owns the request, until `Cmd::put` hands it
        // to `blk_mq_complete_request` or to `T::nowait_fallback`.
        core::mem::forget(self);
        // SAFETY: The command is ours until submission (see above).
        unsafe {
            (&raw mut (*cmd).io).write(MaybeUninit::new(InFlight {
                _file: file,
                _bvecs: bvecs,
                write,
            }))
        };
        let ret = if mode == DirectMode::NoWaitFailNow {
            -(bindings::EAGAIN as isize)
        } else {
            // SAFETY: The kiocb is filled in and its file is held by the
            // command until the I/O ends; the iterator covers the request's
            // pages, and the bvecs it points to are held by the command
            // too. `op` is the file's own operation.
            unsafe { op(&raw mut (*cmd).iocb, &mut iter.0) }
        };
        // SAFETY: The submitter's reference; after it the command may be
        // completed, and it is not used again unless the completion's
        // reference is still ours (a result other than `-EIOCBQUEUED`).
        unsafe { Cmd::put::<T>(cmd) };
        if ret != -(bindings::EIOCBQUEUED as isize) {
            // SAFETY: The filesystem finished at once and will not call
            // `ki_complete`: its reference is ours to drop.
            unsafe { Cmd::ki_complete::<T>(cmd.cast(), ret as c_long) };
        }
        Ok(())
    }
}

/// What a direct I/O holds while it is in flight.
pub(super) struct InFlight {
    /// `ki_filp`'s reference, held until the I/O ends.
    _file: BackingFile,
    /// The gathered bvecs the bios point into (empty for one bio), held
    /// until the I/O ends.
    _bvecs: KVec<bindings::bio_vec>,
    write: bool,
}

impl Cmd {
    /// `ki_complete`: records the result and drops the completion's
    /// reference. May run in interrupt context.
    ///
    /// # Safety
    ///
    /// `iocb` is the kiocb of a command in flight, and the caller holds the
    /// completion's reference.
    unsafe extern "C" fn ki_complete<T: DiskDriver>(iocb: *mut bindings::kiocb, ret: c_long) {
        let cmd = iocb.cast::<Cmd>();
        // SAFETY: By the type invariant `iocb` is the start of the command,
        // which is in flight.
        unsafe {
            let ret = if (*cmd).fail_late {
                -(bindings::EAGAIN as c_long)
            } else {
                ret
            };
            (*cmd).ret.store(ret, Ordering::Relaxed);
            Cmd::put::<T>(cmd);
        }
    }

    /// Drops a reference; the last one releases the file, the bvecs and
    /// the write freeze protection, and completes the request, as
    /// `lo_rw_aio_do_completion()`; or, for a `NOWAIT` attempt that did
    /// not do the whole request, gives it back to `T::nowait_fallback`.
    /// May run in interrupt context.
    ///
    /// # Safety
    ///
    /// `cmd` is in flight and the caller holds one of its references, which
    /// it gives up. The request's queue belongs to a disk made by
    /// [`Disk::new`] for `T`.
    unsafe fn put<T: DiskDriver>(cmd: *mut Cmd) {
        // SAFETY: The command is in flight, so `refs` is initialised.
        // Release orders this reference holder's writes (the result) before
        // the last holder's reads, which Acquire.
        if unsafe { (*cmd).refs.fetch_sub(1, Ordering::AcqRel) } != 1 {
            return;
        }
        // SAFETY: This was the last reference: nothing else uses the command,
        // `io` is initialised and is read out once. The request is still
        // owned by the driver and goes to blk-mq's completion exactly once.
        unsafe {
            let io = (*cmd).io.assume_init_read();
            if io.write {
                rloop_kiocb_end_write(&raw mut (*cmd).iocb);
            }
            drop(io);
            let rq = bindings::blk_mq_rq_from_pdu(cmd.cast());
            let ret = (*cmd).ret.load(Ordering::Relaxed);
            if !(*cmd).nowait || ret == rloop_rq_bytes(rq) as isize {
                bindings::blk_mq_complete_request(rq);
                return;
            }
            // The request was given up by `submit_direct` and goes back to
            // the driver once, here; it is not completed.
            let (this, rq) = Request::take_back::<T>(rq);
            T::nowait_fallback(this, rq);
        }
    }
}
