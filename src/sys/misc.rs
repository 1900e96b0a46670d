// SPDX-License-Identifier: GPL-2.0

//! A misc character device with a fixed minor whose only operation is an
//! ioctl, as `/dev/loop-control` is.
//!
//! `kernel::miscdevice` registers dynamic minors only and keeps per-open
//! state; the loop ABI needs minor 237 (`LOOP_CTRL_MINOR`, so that udev and
//! `devname:` module aliases find it) and shared state, hence this wrapper.
//!
//! C header: [`include/linux/miscdevice.h`](srctree/include/linux/miscdevice.h)

use core::marker::PhantomData;
use kernel::{
    bindings, error::to_result, prelude::*, str::CStr, sync::Arc, types::Opaque, ModuleMetadata,
};

/// The handler behind a [`MiscRegistration`].
pub trait MiscIoctl: Send + Sync + Sized + 'static {
    /// The module that owns the device, for `file_operations.owner`.
    type Owner: ModuleMetadata;

    /// Handles `ioctl(fd, cmd, arg)`.
    fn ioctl(&self, cmd: u32, arg: usize) -> Result<isize>;
}

/// A registered misc device with a fixed minor.
///
/// # Invariants
///
/// `inner` is registered with `misc_register` until drop, and `ctx` is set
/// before it is.
#[pin_data(PinnedDrop)]
pub struct MiscRegistration<T: MiscIoctl> {
    ctx: Arc<T>,
    #[pin]
    inner: Opaque<bindings::miscdevice>,
}

// SAFETY: `misc_deregister` may run on any thread; `ctx` is `Send + Sync`.
unsafe impl<T: MiscIoctl> Send for MiscRegistration<T> {}
// SAFETY: `&MiscRegistration` only reads `ctx`, which is `Sync`.
unsafe impl<T: MiscIoctl> Sync for MiscRegistration<T> {}

struct Fops<T: MiscIoctl>(PhantomData<T>);

impl<T: MiscIoctl> Fops<T> {
    const FOPS: bindings::file_operations = bindings::file_operations {
        owner: T::Owner::THIS_MODULE.as_ptr(),
        open: Some(bindings::nonseekable_open),
        llseek: Some(bindings::noop_llseek),
        unlocked_ioctl: Some(Self::ioctl),
        compat_ioctl: Some(Self::ioctl),
        ..pin_init::zeroed()
    };

    /// # Safety
    ///
    /// Called by the VFS on a file opened through a [`MiscRegistration<T>`].
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: `misc_open` set the private data to the `struct miscdevice`,
        // which is the `inner` field of a live `MiscRegistration<T>`: the open
        // file holds a reference on the owner module, which owns the
        // registration.
        let reg = unsafe {
            let misc = (*file).private_data.cast::<Opaque<bindings::miscdevice>>();
            &*kernel::container_of!(misc, MiscRegistration<T>, inner)
        };
        match reg.ctx.ioctl(cmd, arg) {
            Ok(v) => v as c_long,
            Err(e) => e.to_errno() as c_long,
        }
    }
}

impl<T: MiscIoctl> MiscRegistration<T> {
    /// Registers `/dev/<name>` with the given fixed `minor`.
    pub fn register(name: &'static CStr, minor: u32, ctx: Arc<T>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            ctx,
            inner <- Opaque::try_ffi_init(move |slot: *mut bindings::miscdevice| {
                // SAFETY: `slot` is valid for writes and pinned.
                unsafe {
                    slot.write(bindings::miscdevice {
                        minor: minor as c_int,
                        name: name.as_char_ptr(),
                        fops: &Fops::<T>::FOPS,
                        ..pin_init::zeroed()
                    })
                };
                // SAFETY: `slot` holds a filled-in misc device that stays
                // pinned until `misc_deregister` in drop.
                to_result(unsafe { bindings::misc_register(slot) })
            }),
        })
    }
}

#[pinned_drop]
impl<T: MiscIoctl> PinnedDrop for MiscRegistration<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant the device is registered.
        unsafe { bindings::misc_deregister(self.inner.get()) };
    }
}
