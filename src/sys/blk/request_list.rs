// SPDX-License-Identifier: GPL-2.0

//! A lock-free list of requests (`llist`), linked through their commands.
//!
//! C header: [`include/linux/llist.h`](srctree/include/linux/llist.h).

use super::{cmd::Cmd, Request};
use core::{mem::ManuallyDrop, ptr::NonNull};
use kernel::{bindings, types::Opaque};

// The C helpers of `src/helpers/`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_llist_add(node: *mut bindings::llist_node, head: *mut bindings::llist_head) -> bool;
    fn rloop_llist_del_all(head: *mut bindings::llist_head) -> *mut bindings::llist_node;
}

/// A lock-free list of requests owned by the driver (`llist`), for one
/// worker to take in a batch: any context adds, and whoever takes the list
/// gets every request on it, in the order they were added. Each request
/// links through its command, so adding never allocates.
///
/// # Invariants
///
/// Every node on `head` is the `link` of the command of a request of a tag
/// set made by [`TagSet::new`], which the list owns.
pub struct RequestList {
    head: Opaque<bindings::llist_head>,
}

// SAFETY: The list owns its requests, which may be ended from any thread
// (`Request` is `Send`); `llist` operations are atomic.
unsafe impl Send for RequestList {}
// SAFETY: `push` and `take_all` are safe from any number of threads at
// once: `llist_add` and `llist_del_all` are atomic exchanges.
unsafe impl Sync for RequestList {}

impl RequestList {
    /// An empty list.
    pub fn new() -> Self {
        // INVARIANT: An all-zeroes `llist_head` is empty.
        Self {
            head: Opaque::zeroed(),
        }
    }

    /// Adds `rq` at the end; returns whether the list was empty, in which
    /// case the caller must see that someone takes it. Any context.
    pub fn push(&self, rq: Request) -> bool {
        let rq = ManuallyDrop::new(rq);
        // SAFETY: The request is live and ours (type invariant of
        // `Request`), of a tag set of `TagSet::new`, so its PDU is a
        // command; its link is not on any list, since a request is pushed
        // only while the driver owns it. INVARIANT: the list now owns it.
        unsafe { rloop_llist_add(&raw mut (*Cmd::of(rq.raw())).link, self.head.get()) }
    }

    /// Takes every request on the list, oldest first. Any context.
    pub fn take_all(&self) -> RequestBatch {
        // SAFETY: The head is live. The nodes taken are no longer on the
        // list, and so are ours alone; reversed, the oldest comes first.
        let first = unsafe { bindings::llist_reverse_order(rloop_llist_del_all(self.head.get())) };
        RequestBatch { next: first }
    }
}

impl Default for RequestList {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RequestList {
    fn drop(&mut self) {
        // Requests left on the list end with an I/O error (`Request`'s
        // drop) rather than hang.
        for rq in self.take_all() {
            drop(rq);
        }
    }
}

/// The requests taken off a [`RequestList`], oldest first. Those not
/// iterated end with an I/O error when it is dropped.
///
/// # Invariants
///
/// `next` is null or the first of a chain of links of commands of
/// requests that the batch owns.
pub struct RequestBatch {
    next: *mut bindings::llist_node,
}

// SAFETY: The batch owns its requests, which may be ended from any thread.
unsafe impl Send for RequestBatch {}

impl RequestBatch {
    /// Whether the batch holds no request (any more).
    pub fn is_empty(&self) -> bool {
        self.next.is_null()
    }
}

impl Iterator for RequestBatch {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        let node = NonNull::new(self.next)?;
        // SAFETY: By the type invariant the node is the link of a command
        // of a request the batch owns; its `next` is read before the
        // request is given out (and may be pushed again).
        let rq = unsafe {
            self.next = (*node.as_ptr()).next;
            let cmd: *mut Cmd = kernel::container_of!(node.as_ptr(), Cmd, link);
            bindings::blk_mq_rq_from_pdu(cmd.cast())
        };
        // INVARIANT: The batch owned the request and gives it up.
        Some(Request {
            // SAFETY: A PDU's request is not null.
            ptr: unsafe { NonNull::new_unchecked(rq) },
        })
    }
}

impl Drop for RequestBatch {
    fn drop(&mut self) {
        for rq in self.by_ref() {
            drop(rq);
        }
    }
}
