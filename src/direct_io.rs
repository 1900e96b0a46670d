// SPDX-License-Identifier: GPL-2.0

//! When a loop device may do direct I/O to its backing file, and what that
//! asks of the queue: the rules of `loop_update_dio_alignment()`,
//! `lo_can_use_dio()`, `loop_default_blocksize()` and `loop_set_dma_limit()`
//! in `drivers/block/loop.c`.
//!
//! Pure `core` code: compiled into the module and tested on the host.

/// `SECTOR_SIZE`.
const SECTOR_SIZE: u32 = 512;

/// The direct I/O alignment a backing file needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DioAlign {
    /// The smallest I/O size and offset alignment, in bytes.
    pub min_size: u32,
    /// The memory alignment, as a mask (alignment - 1).
    pub mem_mask: u32,
}

impl DioAlign {
    /// Works the alignment out as `loop_update_dio_alignment()` does:
    /// - `statx`: the file's `STATX_DIOALIGN` (offset, memory alignment),
    ///   used when the filesystem reports it with a non-zero memory
    ///   alignment (zeroes mean the file cannot do direct I/O);
    /// - `fs_bdev`: else the logical block size and DMA alignment mask of
    ///   the block device the filesystem is on;
    /// - else 512 bytes.
    pub fn choose(statx: Option<(u32, u32)>, fs_bdev: Option<(u32, u32)>, page_size: u32) -> Self {
        if let Some((offset, mem)) = statx {
            if mem != 0 {
                return Self {
                    min_size: offset,
                    mem_mask: (mem - 1).min(page_size - 1),
                };
            }
        }
        if let Some((lbs, dma_mask)) = fs_bdev {
            return Self {
                min_size: lbs,
                mem_mask: dma_mask,
            };
        }
        Self {
            min_size: SECTOR_SIZE,
            mem_mask: SECTOR_SIZE - 1,
        }
    }

    /// Whether a device with logical block size `block_size` at `offset`
    /// into the file meets the alignment, as `lo_can_use_dio()` asks
    /// (besides the file supporting `O_DIRECT` at all).
    pub fn allows(&self, block_size: u32, offset: u64) -> bool {
        if block_size < self.min_size {
            return false;
        }
        // The sizes are powers of two in practice; test divisibility so
        // that an odd value cannot pass by accident.
        self.min_size != 0 && offset % u64::from(self.min_size) == 0
    }

    /// The block size when none is asked for: the minimum direct I/O size
    /// when direct I/O is asked for, else 512 (`loop_default_blocksize()`).
    pub fn default_block_size(&self, direct: bool) -> u32 {
        if direct {
            self.min_size
        } else {
            SECTOR_SIZE
        }
    }

    /// The queue's DMA alignment mask: with direct I/O the request's pages
    /// go to the backing file as they are, so they must meet its memory
    /// alignment (`loop_set_dma_limit()`).
    pub fn dma_alignment(&self, direct: bool) -> u32 {
        if direct {
            self.mem_mask.max(SECTOR_SIZE - 1)
        } else {
            SECTOR_SIZE - 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u32 = 4096;

    #[test]
    fn statx_wins_when_it_reports_memory_alignment() {
        let a = DioAlign::choose(Some((4096, 512)), Some((512, 511)), PAGE);
        assert_eq!(
            a,
            DioAlign {
                min_size: 4096,
                mem_mask: 511
            }
        );
        // A memory alignment above a page is capped at a page.
        let a = DioAlign::choose(Some((512, 65536)), None, PAGE);
        assert_eq!(a.mem_mask, PAGE - 1);
    }

    #[test]
    fn zeroed_statx_falls_back_to_the_fs_device_then_512() {
        let a = DioAlign::choose(Some((0, 0)), Some((4096, 3)), PAGE);
        assert_eq!(
            a,
            DioAlign {
                min_size: 4096,
                mem_mask: 3
            }
        );
        let a = DioAlign::choose(None, None, PAGE);
        assert_eq!(
            a,
            DioAlign {
                min_size: 512,
                mem_mask: 511
            }
        );
    }

    #[test]
    fn allows_needs_block_size_and_offset_alignment() {
        let a = DioAlign {
            min_size: 4096,
            mem_mask: 511,
        };
        assert!(a.allows(4096, 0));
        assert!(a.allows(4096, 8192));
        assert!(!a.allows(512, 0), "block size below the minimum");
        assert!(!a.allows(4096, 512), "misaligned offset");
        let a = DioAlign {
            min_size: 512,
            mem_mask: 511,
        };
        assert!(a.allows(512, 1 << 20));
        assert!(!a.allows(512, 256));
        assert!(!DioAlign {
            min_size: 0,
            mem_mask: 0
        }
        .allows(512, 0));
    }

    #[test]
    fn block_size_and_dma_alignment_follow_the_mode() {
        let a = DioAlign {
            min_size: 4096,
            mem_mask: 3,
        };
        assert_eq!(a.default_block_size(true), 4096);
        assert_eq!(a.default_block_size(false), 512);
        assert_eq!(a.dma_alignment(true), 511);
        assert_eq!(a.dma_alignment(false), 511);
        let a = DioAlign {
            min_size: 512,
            mem_mask: 4095,
        };
        assert_eq!(a.dma_alignment(true), 4095);
        assert_eq!(a.dma_alignment(false), 511);
    }
}
