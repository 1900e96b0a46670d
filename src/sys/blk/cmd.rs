// SPDX-License-Identifier: GPL-2.0

//! The per-request data of the tag set (`cmd_size`), as `struct loop_cmd`:
//! the kiocb of a direct I/O, the work item, the page wait and the list
//! link that move a request between contexts.

use super::kiocb::InFlight;
use core::{
    mem::MaybeUninit,
    sync::atomic::{AtomicIsize, AtomicU32},
};
use kernel::bindings;

/// The per-request data of the tag set (`cmd_size`): the kiocb of a direct
/// I/O and what it needs until it ends, as `struct loop_cmd`.
///
/// # Invariants
///
/// From the submission of the kiocb in [`Request::submit_direct`] to the
/// drop of the last reference in [`Cmd::put`], every field is initialised,
/// `io` included, and `refs` counts the submitter and the completion; `iocb` is first, so a pointer
/// to it is a pointer to the command.
#[repr(C)]
pub(super) struct Cmd {
    pub(super) iocb: bindings::kiocb,
    pub(super) refs: AtomicU32,
    /// The result: bytes done, or a negative errno.
    pub(super) ret: AtomicIsize,
    /// Submitted with `IOCB_NOWAIT`: anything but the whole request done
    /// goes to the driver's fallback.
    pub(super) nowait: bool,
    /// Fault injection: the result is taken as `-EAGAIN`.
    pub(super) fail_late: bool,
    pub(super) io: MaybeUninit<InFlight>,
    /// The work item of [`Request::queue_work`].
    pub(super) work: bindings::work_struct,
    /// The link of [`RequestList`].
    pub(super) link: bindings::llist_node,
}

impl Cmd {
    /// The command of `rq`.
    ///
    /// # Safety
    ///
    /// `rq` belongs to a tag set made by [`TagSet::new`], whose `cmd_size`
    /// is that of `Cmd`.
    pub(super) unsafe fn of(rq: *mut bindings::request) -> *mut Cmd {
        // SAFETY: The PDU follows the request, `cmd_size` bytes, aligned
        // for the request and so for `Cmd`.
        unsafe { bindings::blk_mq_rq_to_pdu(rq).cast() }
    }
}
