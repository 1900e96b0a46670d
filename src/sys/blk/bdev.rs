// SPDX-License-Identifier: GPL-2.0

//! The block device an ioctl came through: its open mode and a temporary
//! exclusive claim.
//!
//! C header: [`include/linux/blkdev.h`](srctree/include/linux/blkdev.h).

use kernel::{bindings, error::to_result, prelude::*, types::Opaque};

// The C helpers of `src/helpers/`. bindgen's structs are only passed by
// pointer, so the lint about their opaque members does not apply.
#[allow(improper_ctypes)]
extern "C" {
    fn rloop_mode_write(mode: bindings::blk_mode_t) -> bool;
    fn rloop_mode_excl(mode: bindings::blk_mode_t) -> bool;
}

/// The mode a block device was opened with (`blk_mode_t`).
#[derive(Clone, Copy, Debug)]
pub struct OpenMode(pub(super) bindings::blk_mode_t);

impl OpenMode {
    /// Opened for writing (`BLK_OPEN_WRITE`).
    pub fn write(self) -> bool {
        // SAFETY: A pure flag test.
        unsafe { rloop_mode_write(self.0) }
    }

    /// Opened exclusively (`BLK_OPEN_EXCL`).
    pub fn exclusive(self) -> bool {
        // SAFETY: A pure flag test.
        unsafe { rloop_mode_excl(self.0) }
    }
}

/// The block device an ioctl came through.
///
/// # Invariants
///
/// `self.0` is a live, open `struct block_device` for the reference's life.
#[repr(transparent)]
pub struct BdevRef(Opaque<bindings::block_device>);

/// The holder of the loop driver's temporary claims.
static CLAIM_HOLDER: u8 = 0;

impl BdevRef {
    /// Claims the device for exclusive use until the guard goes, as
    /// `bd_prepare_to_claim`/`bd_abort_claiming` around a reconfiguration:
    /// fails with `EBUSY` while someone else holds it exclusively.
    pub fn claim(&self) -> Result<BdevClaim<'_>> {
        // SAFETY: The bdev is live; the holder is a static address.
        to_result(unsafe {
            bindings::bd_prepare_to_claim(
                self.0.get(),
                (&raw const CLAIM_HOLDER).cast_mut().cast(),
                core::ptr::null(),
            )
        })?;
        Ok(BdevClaim { bdev: self })
    }
}

/// A claim on a block device, dropped by `bd_abort_claiming`.
pub struct BdevClaim<'a> {
    bdev: &'a BdevRef,
}

impl Drop for BdevClaim<'_> {
    fn drop(&mut self) {
        // SAFETY: `claim` prepared this claim with the same holder.
        unsafe {
            bindings::bd_abort_claiming(
                self.bdev.0.get(),
                (&raw const CLAIM_HOLDER).cast_mut().cast(),
            )
        };
    }
}
