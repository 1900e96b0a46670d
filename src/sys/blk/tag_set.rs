// SPDX-License-Identifier: GPL-2.0

//! A blk-mq tag set whose requests carry a [`Cmd`](super::cmd::Cmd).
//!
//! C header: [`include/linux/blk-mq.h`](srctree/include/linux/blk-mq.h).

use super::{cmd::Cmd, operations::Callbacks, DiskDriver};
use core::marker::PhantomData;
use kernel::{bindings, error::to_result, prelude::*, types::Opaque};

/// A blk-mq tag set for disks driven by `T`.
///
/// # Invariants
///
/// `inner` is a tag set initialised by `blk_mq_alloc_tag_set`.
#[pin_data(PinnedDrop)]
pub struct TagSet<T: DiskDriver> {
    #[pin]
    inner: Opaque<bindings::blk_mq_tag_set>,
    _p: PhantomData<T>,
}

// SAFETY: The tag set is only changed by the block layer under its own locks.
unsafe impl<T: DiskDriver> Send for TagSet<T> {}
// SAFETY: See above; `&TagSet` exposes no interior mutability.
unsafe impl<T: DiskDriver> Sync for TagSet<T> {}

/// `BLK_MQ_F_*` flags of a tag set.
pub mod tag_set_flags {
    use kernel::bindings;
    /// The queue stacks on other block devices (`BLK_MQ_F_STACKING`).
    pub const STACKING: u32 = bindings::BLK_MQ_F_STACKING;
    /// No I/O scheduler by default (`BLK_MQ_F_NO_SCHED_BY_DEFAULT`).
    pub const NO_SCHED_BY_DEFAULT: u32 = bindings::BLK_MQ_F_NO_SCHED_BY_DEFAULT;
    /// `queue_rq` may sleep (`BLK_MQ_F_BLOCKING`): blk-mq dispatches under
    /// SRCU, from a context that can sleep.
    pub const BLOCKING: u32 = bindings::BLK_MQ_F_BLOCKING;
}

impl<T: DiskDriver> TagSet<T> {
    pub(super) fn raw(&self) -> *mut bindings::blk_mq_tag_set {
        self.inner.get()
    }

    /// The number of hardware queues of the set's queues.
    pub fn nr_hw_queues(&self) -> u32 {
        // SAFETY: By the type invariant the tag set is initialised. The
        // field changes only in `blk_mq_update_nr_hw_queues`, under the
        // set's lock; the volatile read is the `READ_ONCE` of a value that
        // may be changing.
        unsafe { core::ptr::read_volatile(&raw const (*self.raw()).nr_hw_queues) }
    }

    /// Changes the number of hardware queues of every queue of the set to
    /// `nr` (`blk_mq_update_nr_hw_queues`): the block layer freezes the
    /// queues, so requests in flight end first, and remaps the software
    /// queues. Values above the possible CPUs are clamped, 0 is ignored,
    /// and a failed allocation keeps the old number: [`Self::nr_hw_queues`]
    /// tells what took effect. May sleep; the caller must not hold a
    /// queue of the set frozen, nor a lock that the set's requests need
    /// to end.
    pub fn update_nr_hw_queues(&self, nr: u32) {
        // SAFETY: By the type invariant the tag set is initialised; the
        // function takes the set's own locks and freezes its queues.
        unsafe {
            bindings::blk_mq_update_nr_hw_queues(self.raw(), nr.min(i32::MAX as u32) as c_int)
        };
    }

    /// Allocates a tag set with `nr_hw_queues` queues of `queue_depth` tags.
    pub fn new(nr_hw_queues: u32, queue_depth: u32, flags: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            inner <- Opaque::try_ffi_init(move |slot: *mut bindings::blk_mq_tag_set| {
                // SAFETY: `slot` is valid for writes and pinned.
                unsafe {
                    slot.write(bindings::blk_mq_tag_set {
                        ops: &Callbacks::<T>::MQ_OPS,
                        nr_hw_queues,
                        queue_depth,
                        numa_node: bindings::NUMA_NO_NODE,
                        cmd_size: size_of::<Cmd>() as c_uint,
                        flags,
                        nr_maps: 1,
                        ..pin_init::zeroed()
                    })
                };
                // SAFETY: `slot` holds a filled-in tag set; on failure nothing
                // is left to free.
                to_result(unsafe { bindings::blk_mq_alloc_tag_set(slot) })
            }),
            _p: PhantomData,
        })
    }
}

#[pinned_drop]
impl<T: DiskDriver> PinnedDrop for TagSet<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the tag set was allocated. The owner
        // drops it only after every disk using it was released.
        unsafe { bindings::blk_mq_free_tag_set(self.inner.get()) };
    }
}
