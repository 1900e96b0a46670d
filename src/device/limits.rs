// SPDX-License-Identifier: GPL-2.0

//! The rules of a bound device: which backing files are valid, when
//! direct I/O is possible, the device size, and the queue limits, as
//! `loop_check_backing_file()`, `lo_can_use_dio()`,
//! `loop_update_limits()` and `loop_get_discard_config()`.

use kernel::{pr_warn, prelude::*};

use super::Binding;
use crate::direct_io::DioAlign;
use crate::sys::{
    blk::Limits,
    file::{BackingFile, FileKind},
};
use crate::uapi::{self, InfoError, LoopInfo64};

/// The backing file's operations, as `loop_check_backing_file()`.
pub(super) fn check_backing_file(file: &BackingFile) -> Result {
    if !file.has_read_iter() || (file.opened_for_write() && !file.has_write_iter()) {
        return Err(EINVAL);
    }
    Ok(())
}

/// The direct I/O alignment of `file`, as `loop_update_dio_alignment()`.
pub(super) fn dio_align_of(file: &BackingFile) -> DioAlign {
    DioAlign::choose(
        file.statx_dio_align(),
        file.fs_bdev_align(),
        kernel::page::PAGE_SIZE as u32,
    )
}

/// `lo_can_use_dio()`: the file supports `O_DIRECT`, and a device of logical
/// block size `bsize` at `offset` meets its alignment.
pub(super) fn can_use_dio(file: &BackingFile, align: DioAlign, bsize: u32, offset: u64) -> bool {
    file.can_direct_io() && align.allows(bsize, offset)
}

/// The one rule for `LO_FLAGS_DIRECT_IO` in a change of settings, as
/// `loop_update_dio()`: `flags` with direct I/O dropped, silently, where
/// [`can_use_dio`] rules it out for `file` at block size `bsize` and
/// `offset`. `LOOP_GET_STATUS` then shows what is in effect.
pub(super) fn dio_flags(
    flags: u32,
    file: &BackingFile,
    align: DioAlign,
    bsize: u32,
    offset: u64,
) -> u32 {
    if can_use_dio(file, align, bsize, offset) {
        flags
    } else {
        flags & !uapi::LO_FLAGS_DIRECT_IO
    }
}

/// Whether `flags` ask for direct I/O.
pub(super) fn is_direct(flags: u32) -> bool {
    flags & uapi::LO_FLAGS_DIRECT_IO != 0
}

pub(super) fn check_info(info: &LoopInfo64) -> Result {
    match info.check() {
        Ok(()) => Ok(()),
        Err(InfoError::Overflow) => Err(EOVERFLOW),
        Err(InfoError::XorRemoved) => {
            pr_warn!("support for the xor transformation has been removed.\n");
            Err(EINVAL)
        }
        Err(InfoError::CryptoapiRemoved) => {
            pr_warn!("support for cryptoloop has been removed.  Use dm-crypt instead.\n");
            Err(EINVAL)
        }
        Err(InfoError::Invalid) => Err(EINVAL),
    }
}

/// The queue limits of a bound device, as `loop_update_limits()` sets them:
/// worked out before the queue is frozen, applied while it is.
pub(super) struct BoundLimits {
    bsize: u32,
    dma_alignment: u32,
    pub(super) discard_sectors: u32,
    discard_granularity: u32,
    write_cache: bool,
    rotational: bool,
}

impl BoundLimits {
    pub(super) fn new(file: &BackingFile, flags: u32, bsize: u32, dio_align: DioAlign) -> Self {
        let (discard_sectors, discard_granularity) = discard_limits(file);
        Self {
            bsize,
            dma_alignment: dio_align.dma_alignment(flags & uapi::LO_FLAGS_DIRECT_IO != 0),
            discard_sectors,
            discard_granularity,
            // Flushes reach the driver only with a write cache.
            write_cache: file.has_fsync() && flags & uapi::LO_FLAGS_READ_ONLY == 0,
            rotational: file.rotational(),
        }
    }

    pub(super) fn apply(&self, lim: &mut Limits) {
        lim.set_block_size(self.bsize);
        lim.set_dma_alignment(self.dma_alignment);
        lim.set_features(self.write_cache, self.rotational);
        lim.set_discard(self.discard_sectors, self.discard_granularity);
    }
}

/// Discard limits from the backing file, as `loop_get_discard_config()`:
/// a block device's zeroing limits, or for a regular file punched holes in
/// units of the filesystem block.
pub(super) fn discard_limits(file: &BackingFile) -> (u32, u32) {
    if let Some(limits) = file.bdev_zeroing_limits() {
        return limits;
    }
    match file.kind() {
        FileKind::Regular if file.has_fallocate() => match file.fs_block_size() {
            Ok(bsize) => (u32::MAX >> 9, bsize),
            Err(_) => (0, 0),
        },
        _ => (0, 0),
    }
}

pub(super) fn capacity(b: &Binding) -> u64 {
    let size = b.file.size().unwrap_or(0);
    uapi::device_sectors(size, b.offset, b.sizelimit)
}
