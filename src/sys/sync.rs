// SPDX-License-Identifier: GPL-2.0

//! Waiting for a mutex that a fatal signal can interrupt, as
//! `mutex_lock_killable()`, which `kernel::sync::Mutex` does not offer yet.
//!
//! C header: [`include/linux/mutex.h`](srctree/include/linux/mutex.h).

use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    sync::{Mutex, MutexGuard},
};

extern "C" {
    fn rloop_mutex_lock_killable(lock: *mut bindings::mutex) -> c_int;
}

/// Locks `mutex` as [`Mutex::lock`] does, but gives up with `EINTR` when the
/// task gets a fatal signal while it waits, as `mutex_lock_killable()`: a
/// task killed while an ioctl holds the lock across slow I/O exits at once.
pub fn lock_killable<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    // `Lock` is `#[repr(C)]` and its first field is its `struct mutex`, in
    // an `Opaque` (`#[repr(transparent)]`): the lock's address is the
    // mutex's.
    let raw = core::ptr::from_ref(mutex)
        .cast::<bindings::mutex>()
        .cast_mut();
    // SAFETY: `raw` points to the initialised `struct mutex` of a live,
    // pinned `Mutex` (see above); the kernel serialises concurrent lockers.
    to_result(unsafe { rloop_mutex_lock_killable(raw) })?;
    // SAFETY: This task took the mutex just above and owns it; the guard
    // releases it when dropped, with `mutex_unlock` as for `Mutex::lock`.
    Ok(unsafe { MutexGuard::new(mutex, ()) })
}
