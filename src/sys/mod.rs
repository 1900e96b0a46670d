// SPDX-License-Identifier: GPL-2.0

//! The wrapper layer: thin safe types over `kernel::bindings` and the C
//! helpers in `src/helpers/`, for what the kernel crate does not offer yet.
//!
//! Every `unsafe` of the module lives below this directory.

pub mod blk;
pub mod file;
pub mod misc;
pub mod sync;
pub mod task;
pub mod workqueue;

use core::marker::PhantomData;
use kernel::{
    bindings,
    transmute::{AsBytes, FromBytes},
    ModuleMetadata,
};

use crate::uapi::{CompatLoopInfo, LoopConfig, LoopInfo, LoopInfo64};

// SAFETY: `repr(C)` structs of integers and byte arrays with no implicit
// padding (the layouts are checked by the host tests): every bit pattern is
// valid and every byte is initialised.
unsafe impl FromBytes for LoopInfo {}
// SAFETY: As above.
unsafe impl AsBytes for LoopInfo {}
// SAFETY: As above.
unsafe impl FromBytes for LoopInfo64 {}
// SAFETY: As above.
unsafe impl AsBytes for LoopInfo64 {}
// SAFETY: As above.
unsafe impl FromBytes for LoopConfig {}
// SAFETY: As above.
unsafe impl FromBytes for CompatLoopInfo {}
// SAFETY: As above.
unsafe impl AsBytes for CompatLoopInfo {}

/// A reference on module `M`, held by each bound loop device as in C, so
/// that the module cannot go while a backing file is attached.
pub struct ModuleRef<M: ModuleMetadata>(PhantomData<fn() -> M>);

impl<M: ModuleMetadata> ModuleRef<M> {
    /// Takes a reference. The caller runs code of `M` that got here through
    /// an open file or device, so the module is live and not going.
    pub fn get() -> Self {
        // SAFETY: The module is live (see above), so `__module_get` is valid.
        unsafe { bindings::__module_get(M::THIS_MODULE.as_ptr()) };
        Self(PhantomData)
    }
}

impl<M: ModuleMetadata> Drop for ModuleRef<M> {
    fn drop(&mut self) {
        // SAFETY: Drops the reference `get` took.
        unsafe { bindings::module_put(M::THIS_MODULE.as_ptr()) };
    }
}

// The C helpers of `src/helpers/`.
#[cfg(CONFIG_COMPAT)]
extern "C" {
    fn rloop_compat_ptr(arg: usize) -> usize;
}

/// The user address in an ioctl argument of a 32-bit caller
/// (`compat_ptr()`): the argument as it came, which on some architectures
/// (s390) is not yet an address.
#[cfg(CONFIG_COMPAT)]
pub fn compat_ptr(arg: usize) -> usize {
    // SAFETY: A conversion of integers, with no preconditions.
    unsafe { rloop_compat_ptr(arg) }
}

/// Whether the caller has `CAP_SYS_ADMIN`.
pub fn capable_sys_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}
