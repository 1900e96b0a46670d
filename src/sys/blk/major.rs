// SPDX-License-Identifier: GPL-2.0

//! A registered block major with a probe callback.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h).

use core::{
    marker::PhantomData,
    sync::atomic::{AtomicPtr, Ordering},
};
use kernel::{bindings, prelude::*, str::CStr, sync::Arc, types::ForeignOwnable};

/// What gets called when a device number of a registered major is opened
/// and no disk has it yet.
pub trait Probe: Send + Sync + 'static {
    /// Create the disk for `minor`, if it should exist.
    fn probe(&self, minor: u32);
}

/// The one probe context of this module; set while a [`BlkdevMajor`] lives.
static PROBE_CTX: AtomicPtr<c_void> = AtomicPtr::new(core::ptr::null_mut());

/// A registered block major (`__register_blkdev`) with its probe.
///
/// # Invariants
///
/// `major` is registered under `name`, and `PROBE_CTX` holds an
/// `Arc<P>` reference made by `into_foreign` until drop.
pub struct BlkdevMajor<P: Probe> {
    major: u32,
    name: &'static CStr,
    _p: PhantomData<Arc<P>>,
}

impl<P: Probe> BlkdevMajor<P> {
    /// Registers `major` as `name`, sending probes to `ctx`. A module can hold
    /// one such registration at a time; a second gets `EBUSY`.
    pub fn register(major: u32, name: &'static CStr, ctx: Arc<P>) -> Result<Self> {
        let foreign = ctx.into_foreign();
        if PROBE_CTX
            .compare_exchange(
                core::ptr::null_mut(),
                foreign,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            // SAFETY: `foreign` was never published.
            drop(unsafe { <Arc<P> as ForeignOwnable>::from_foreign(foreign) });
            return Err(EBUSY);
        }
        // SAFETY: `name` is a static NUL-terminated string; the probe callback
        // finds its context in `PROBE_CTX`, set above.
        let ret =
            unsafe { bindings::__register_blkdev(major, name.as_char_ptr(), Some(Self::probe)) };
        if ret != 0 {
            PROBE_CTX.store(core::ptr::null_mut(), Ordering::Release);
            // SAFETY: Registration failed, so no probe can run with `foreign`.
            drop(unsafe { <Arc<P> as ForeignOwnable>::from_foreign(foreign) });
            // `__register_blkdev` returns -EBUSY or -EINVAL for a fixed major.
            return Err(Error::from_errno(ret.min(-1)));
        }
        Ok(Self {
            major,
            name,
            _p: PhantomData,
        })
    }

    /// # Safety
    ///
    /// Called by the block layer, with `major_names_lock` held, for a device
    /// number of a major registered by [`Self::register`].
    unsafe extern "C" fn probe(devt: bindings::dev_t) {
        let ctx = PROBE_CTX.load(Ordering::Acquire);
        if ctx.is_null() {
            return;
        }
        // SAFETY: Probes run under `major_names_lock` and `unregister_blkdev`
        // takes it too, so the registration, and the context it stored, live
        // for the whole call.
        let ctx = unsafe { <Arc<P> as ForeignOwnable>::borrow(ctx) };
        ctx.probe(devt & ((1 << bindings::MINORBITS) - 1));
    }
}

impl<P: Probe> Drop for BlkdevMajor<P> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant the major is registered under `name`.
        unsafe { bindings::unregister_blkdev(self.major, self.name.as_char_ptr()) };
        let ctx = PROBE_CTX.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !ctx.is_null() {
            // SAFETY: No probe runs after `unregister_blkdev`; the context is
            // the reference `register` stored.
            drop(unsafe { <Arc<P> as ForeignOwnable>::from_foreign(ctx) });
        }
    }
}
