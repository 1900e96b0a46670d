// SPDX-License-Identifier: GPL-2.0

//! The `loop/` sysfs directory of a disk.

use super::{operations::Callbacks, DiskDriver, DiskRef};
use crate::sys::file::BackingFile;
use core::fmt::Write;
use kernel::{bindings, error::to_result, prelude::*, sync::ArcBorrow};

// The C helpers of `src/helpers/`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_sysfs_set_show(show: unsafe extern "C" fn(*mut c_void, c_int, *mut c_char) -> isize);
    fn rloop_sysfs_set_store(
        store: unsafe extern "C" fn(*mut c_void, c_int, *const c_char, usize) -> isize,
    );
    fn rloop_disk_sysfs_add(disk: *mut bindings::gendisk) -> c_int;
    fn rloop_disk_sysfs_remove(disk: *mut bindings::gendisk);
    fn rloop_file_path_show(file: *mut bindings::file, buf: *mut c_char) -> isize;
}

impl DiskRef {
    /// Adds the `loop/` sysfs directory.
    pub fn sysfs_add(&self) -> Result {
        // SAFETY: By the type invariant the disk is live.
        to_result(unsafe { rloop_disk_sysfs_add(self.as_ptr()) })
    }

    /// Removes the `loop/` sysfs directory; waits for reads in progress, so
    /// call it with no lock that a read takes.
    pub fn sysfs_remove(&self) {
        // SAFETY: By the type invariant the disk is live.
        unsafe { rloop_disk_sysfs_remove(self.as_ptr()) };
    }
}

/// The attributes of a disk's `loop/` sysfs directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysfsAttr {
    /// `backing_file`.
    BackingFile,
    /// `offset`.
    Offset,
    /// `sizelimit`.
    Sizelimit,
    /// `autoclear`.
    Autoclear,
    /// `partscan`.
    Partscan,
    /// `dio`.
    Dio,
    /// `nowait`, writable: whether direct I/O is first tried from
    /// `queue_rq` with `IOCB_NOWAIT` (an rloop extension).
    Nowait,
    /// `nowait_depth`, writable: the queue depth up to which `NOWAIT` is
    /// tried (an rloop extension).
    NowaitDepth,
    /// `nr_hw_queues`, writable: the device's hardware queues (an rloop
    /// extension).
    NrHwQueues,
}

impl SysfsAttr {
    fn from_index(which: c_int) -> Option<Self> {
        Some(match which {
            0 => Self::BackingFile,
            1 => Self::Offset,
            2 => Self::Sizelimit,
            3 => Self::Autoclear,
            4 => Self::Partscan,
            5 => Self::Dio,
            6 => Self::Nowait,
            7 => Self::NowaitDepth,
            8 => Self::NrHwQueues,
            _ => return None,
        })
    }
}

/// What a `loop/` attribute shows.
pub enum SysfsValue<'a> {
    /// The path of a file, as `file_path()` gives it.
    Path(&'a BackingFile),
    /// A number.
    Number(u64),
}

/// A driver whose disks have the `loop/` sysfs directory.
pub trait DiskSysfs: DiskDriver {
    /// The value of `attr`, or an error for the read.
    fn show(
        this: ArcBorrow<'_, Self>,
        attr: SysfsAttr,
        f: &mut dyn FnMut(SysfsValue<'_>) -> isize,
    ) -> Result<isize>;

    /// A write of `input` to `attr`, which sysfs only allows for the
    /// writable ones.
    fn store(this: ArcBorrow<'_, Self>, attr: SysfsAttr, input: &[u8]) -> Result;
}

/// Sends every `loop/` attribute read to `T`. Called once at module init.
pub fn sysfs_register<T: DiskSysfs>() {
    // SAFETY: The callback stays valid for the module's life, and the
    // attributes exist only on disks of this module.
    unsafe {
        rloop_sysfs_set_show(sysfs_show::<T>);
        rloop_sysfs_set_store(sysfs_store::<T>);
    }
}

/// # Safety
///
/// Called by sysfs for a writable attribute of a disk made by
/// [`Disk::new`] for `T`, with `count` bytes at `buf`.
unsafe extern "C" fn sysfs_store<T: DiskSysfs>(
    data: *mut c_void,
    which: c_int,
    buf: *const c_char,
    count: usize,
) -> isize {
    let Some(attr) = SysfsAttr::from_index(which) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: The attribute's disk is live while sysfs calls its store,
    // and its private data is ours.
    let this = unsafe { Callbacks::<T>::borrow(data) };
    // SAFETY: sysfs passes `count` readable bytes.
    let input = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), count) };
    match T::store(this, attr, input) {
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// Called by sysfs for an attribute of a disk made by [`Disk::new`] for
/// `T`, with a `PAGE_SIZE` buffer.
unsafe extern "C" fn sysfs_show<T: DiskSysfs>(
    data: *mut c_void,
    which: c_int,
    buf: *mut c_char,
) -> isize {
    let Some(attr) = SysfsAttr::from_index(which) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: The attribute's disk is live while sysfs calls its show, and
    // its private data is ours.
    let this = unsafe { Callbacks::<T>::borrow(data) };
    let mut emit = |v: SysfsValue<'_>| -> isize {
        match v {
            // SAFETY: `buf` is a sysfs page; the file is valid.
            SysfsValue::Path(file) => unsafe { rloop_file_path_show(file.raw(), buf) },
            SysfsValue::Number(n) => {
                // SAFETY: `buf` is a sysfs page, `PAGE_SIZE` bytes.
                let page = unsafe {
                    core::slice::from_raw_parts_mut(buf.cast::<u8>(), bindings::PAGE_SIZE)
                };
                let mut w = kernel::str::Formatter::new(page);
                let _ = writeln!(w, "{n}");
                w.bytes_written() as isize
            }
        }
    };
    match T::show(this, attr, &mut emit) {
        Ok(n) => n,
        Err(e) => e.to_errno() as isize,
    }
}
