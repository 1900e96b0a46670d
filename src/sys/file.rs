// SPDX-License-Identifier: GPL-2.0

//! The backing file of a loop device: a counted `struct file` reference with
//! the operations the driver needs.
//!
//! C headers: [`include/linux/fs.h`](srctree/include/linux/fs.h).

use kernel::{
    bindings,
    error::to_result,
    fs::{File, LocalFile},
    prelude::*,
    sync::aref::ARef,
};

#[allow(improper_ctypes)]
extern "C" {
    fn rloop_file_mode_write(file: *mut bindings::file) -> bool;
    fn rloop_i_size_read(inode: *mut bindings::inode) -> bindings::loff_t;
    fn rloop_file_path(file: *mut bindings::file) -> *const bindings::path;
    fn rloop_file_fs_block_size(file: *mut bindings::file, bsize: *mut u32) -> c_int;
    fn rloop_backing_bdev(file: *mut bindings::file) -> *mut bindings::block_device;
    fn rloop_bdev_rot(bdev: *mut bindings::block_device) -> bool;
    fn rloop_bdev_write_zeroes_sectors(bdev: *mut bindings::block_device) -> c_uint;
    fn rloop_bdev_discard_granularity(bdev: *mut bindings::block_device) -> c_uint;
    fn rloop_file_can_odirect(file: *mut bindings::file) -> bool;
    fn rloop_file_o_direct(file: *mut bindings::file) -> bool;
    fn rloop_file_nowait(file: *mut bindings::file) -> bool;
    fn rloop_file_buf_rasync(file: *mut bindings::file) -> bool;
    fn rloop_file_read_touches_atime(file: *mut bindings::file) -> bool;
    fn rloop_file_statx_dioalign(
        file: *mut bindings::file,
        offset_align: *mut u32,
        mem_align: *mut u32,
    ) -> c_int;
    fn rloop_file_sb_bdev_align(file: *mut bindings::file, lbs: *mut u32, dma: *mut u32) -> bool;
}

/// `fallocate` mode bits of `include/uapi/linux/falloc.h`.
pub mod falloc {
    /// Keep the file size.
    pub const KEEP_SIZE: i32 = 0x01;
    /// Deallocate the range.
    pub const PUNCH_HOLE: i32 = 0x02;
    /// Zero the range, keeping it allocated.
    pub const ZERO_RANGE: i32 = 0x10;
}

/// What the inode behind a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A block device, with its device number.
    Block(u32),
    /// Anything else: not a valid backing file.
    Other,
}

/// Identity of a backing file, as `LOOP_GET_STATUS` reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileIds {
    /// Device of the file's filesystem.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Device the file stands for.
    pub rdev: u64,
}

/// A backing file.
///
/// # Invariants
///
/// `file` is a valid, counted file reference with a non-null `f_op` and
/// `f_mapping->host`.
pub struct BackingFile {
    file: ARef<File>,
}

impl BackingFile {
    /// Takes a reference on the file of descriptor `fd` (`EBADF` if none).
    pub fn from_fd(fd: u32) -> Result<Self> {
        let local: ARef<LocalFile> = LocalFile::fget(fd)?;
        // SAFETY: The driver never uses `fdget_pos` regions: it does I/O at
        // explicit offsets only.
        let file = unsafe { LocalFile::assume_no_fdget_pos(local) };
        // INVARIANT: an open file has operations and a mapping host.
        Ok(Self { file })
    }

    pub(crate) fn raw(&self) -> *mut bindings::file {
        self.file.as_ptr()
    }

    fn fops(&self) -> &bindings::file_operations {
        // SAFETY: By the type invariant `f_op` is valid for the file's life.
        unsafe { &*(*self.raw()).f_op }
    }

    fn host(&self) -> *mut bindings::inode {
        // SAFETY: By the type invariant the mapping and its host are valid.
        unsafe { (*(*self.raw()).f_mapping).host }
    }

    /// Whether the file was opened for writing (`FMODE_WRITE`).
    pub fn opened_for_write(&self) -> bool {
        // SAFETY: The file is valid.
        unsafe { rloop_file_mode_write(self.raw()) }
    }

    /// Whether the file can be read with `read_iter`.
    pub fn has_read_iter(&self) -> bool {
        self.fops().read_iter.is_some()
    }

    /// Whether the file can be written with `write_iter`.
    pub fn has_write_iter(&self) -> bool {
        self.fops().write_iter.is_some()
    }

    /// Whether the file has `fsync`.
    pub fn has_fsync(&self) -> bool {
        self.fops().fsync.is_some()
    }

    /// Whether the file has `fallocate`.
    pub fn has_fallocate(&self) -> bool {
        self.fops().fallocate.is_some()
    }

    /// The kind of the inode behind the file.
    pub fn kind(&self) -> FileKind {
        // SAFETY: The host inode is valid while the file is.
        let (mode, rdev) = unsafe { (u32::from((*self.host()).i_mode), (*self.host()).i_rdev) };
        match mode & bindings::S_IFMT {
            bindings::S_IFREG => FileKind::Regular,
            bindings::S_IFBLK => FileKind::Block(rdev),
            _ => FileKind::Other,
        }
    }

    /// The size in bytes: the block device's, or the file's from
    /// `vfs_getattr_nosec` (accurate on network filesystems).
    pub fn size(&self) -> Result<u64> {
        if let FileKind::Block(_) = self.kind() {
            // SAFETY: The host inode is valid.
            return Ok(unsafe { rloop_i_size_read(self.host()) }.max(0) as u64);
        }
        let mut stat: bindings::kstat = pin_init::zeroed();
        // SAFETY: `f_path` is valid for the file's life; `stat` is writable.
        to_result(unsafe {
            bindings::vfs_getattr_nosec(
                rloop_file_path(self.raw()),
                &mut stat,
                bindings::STATX_SIZE,
                0,
            )
        })?;
        Ok(stat.size.max(0) as u64)
    }

    /// Device, inode and rdev numbers, from `vfs_getattr`.
    pub fn ids(&self) -> Result<FileIds> {
        let mut stat: bindings::kstat = pin_init::zeroed();
        // SAFETY: `f_path` is valid for the file's life; `stat` is writable.
        to_result(unsafe {
            bindings::vfs_getattr(
                rloop_file_path(self.raw()),
                &mut stat,
                bindings::STATX_INO,
                bindings::AT_STATX_SYNC_AS_STAT,
            )
        })?;
        Ok(FileIds {
            dev: huge_encode_dev(stat.dev),
            ino: stat.ino,
            rdev: huge_encode_dev(stat.rdev),
        })
    }

    /// `vfs_fsync(file, 0)`.
    pub fn fsync(&self) -> Result {
        // SAFETY: The file is valid.
        to_result(unsafe { bindings::vfs_fsync(self.raw(), 0) })
    }

    /// `f_op->fallocate` (`EOPNOTSUPP` when the file has none).
    pub fn fallocate(&self, mode: i32, pos: u64, len: u64) -> Result {
        let f = self.fops().fallocate.ok_or(EOPNOTSUPP)?;
        // SAFETY: The file is valid and `f` is its own operation.
        let ret = unsafe {
            f(
                self.raw(),
                mode,
                pos as bindings::loff_t,
                len as bindings::loff_t,
            )
        };
        to_result(ret as i32)
    }

    /// The block size of the file's filesystem (`f_bsize` of `vfs_statfs`).
    pub fn fs_block_size(&self) -> Result<u32> {
        let mut bsize = 0;
        // SAFETY: The file is valid; `bsize` is writable.
        to_result(unsafe { rloop_file_fs_block_size(self.raw(), &mut bsize) })?;
        Ok(bsize)
    }

    /// Whether the block device behind the file (the file itself, or its
    /// filesystem's device) is rotational.
    pub fn rotational(&self) -> bool {
        // SAFETY: The file is valid; a non-null bdev lives as long as the
        // file keeps it open or its filesystem mounted.
        unsafe {
            let bdev = rloop_backing_bdev(self.raw());
            !bdev.is_null() && rloop_bdev_rot(bdev)
        }
    }

    /// For a block device file: its write-zeroes limit (in sectors) and
    /// discard granularity, which a loop device on it mirrors.
    pub fn bdev_zeroing_limits(&self) -> Option<(u32, u32)> {
        let FileKind::Block(_) = self.kind() else {
            return None;
        };
        // SAFETY: The file is an open block device, so its bdev is live.
        unsafe {
            let bdev = rloop_backing_bdev(self.raw());
            Some((
                rloop_bdev_write_zeroes_sectors(bdev),
                rloop_bdev_discard_granularity(bdev),
            ))
        }
    }

    /// Whether the file supports direct I/O (`FMODE_CAN_ODIRECT`).
    pub fn can_direct_io(&self) -> bool {
        // SAFETY: The file is valid.
        unsafe { rloop_file_can_odirect(self.raw()) }
    }

    /// Whether the file's reads and writes honour `IOCB_NOWAIT`
    /// (`FMODE_NOWAIT`, set at open by ext4, xfs, btrfs, block devices and
    /// others; not by FUSE, overlayfs or 9p, which may block or call out
    /// on the caller's behalf whatever the flag says). io_uring does not
    /// try a non-blocking submission to a file without it either.
    pub fn honours_nowait(&self) -> bool {
        // SAFETY: The file is valid.
        unsafe { rloop_file_nowait(self.raw()) }
    }

    /// Whether the file's buffered reads honour `IOCB_NOWAIT`
    /// (`FOP_BUFFER_RASYNC`, as io_uring checks), for
    /// [`super::blk::Request::read_cached`].
    pub fn nowait_buffered_reads(&self) -> bool {
        // SAFETY: The file is valid.
        unsafe { rloop_file_buf_rasync(self.raw()) }
    }

    /// Whether a read of the file would update its access time now, as
    /// `file_accessed()` at the end of every buffered read does: not with
    /// `O_NOATIME`, else as `atime_needs_update()` says (with `relatime`,
    /// once after each change of the file; never with `noatime`). The
    /// update dirties the inode: ext4 starts a transaction for it, which
    /// may wait for the journal and read the inode's block.
    pub fn read_would_touch_atime(&self) -> bool {
        // SAFETY: The file is valid.
        unsafe { rloop_file_read_touches_atime(self.raw()) }
    }

    /// Whether the file was opened with `O_DIRECT`.
    pub fn opened_direct(&self) -> bool {
        // SAFETY: The file is valid.
        unsafe { rloop_file_o_direct(self.raw()) }
    }

    /// The file's direct I/O alignment from `STATX_DIOALIGN`: the offset
    /// alignment and the memory alignment, in bytes (both 0 when the file
    /// cannot do direct I/O). `None` when the filesystem does not say.
    pub fn statx_dio_align(&self) -> Option<(u32, u32)> {
        let (mut offset, mut mem) = (0, 0);
        // SAFETY: The file is valid; the outputs are writable.
        let ret = unsafe { rloop_file_statx_dioalign(self.raw(), &mut offset, &mut mem) };
        (ret == 0).then_some((offset, mem))
    }

    /// The logical block size and DMA alignment mask of the block device
    /// the file's filesystem is on, if it is on one.
    pub fn fs_bdev_align(&self) -> Option<(u32, u32)> {
        let (mut lbs, mut dma) = (0, 0);
        // SAFETY: The file is valid; its superblock's bdev, if any, lives
        // while the filesystem is mounted, which the open file ensures.
        unsafe { rloop_file_sb_bdev_align(self.raw(), &mut lbs, &mut dma) }.then_some((lbs, dma))
    }

    /// The operation that reads (`write == false`) or writes through a
    /// kiocb, if the file has it.
    pub(crate) fn rw_iter_op(
        &self,
        write: bool,
    ) -> Option<unsafe extern "C" fn(*mut bindings::kiocb, *mut bindings::iov_iter) -> isize> {
        if write {
            self.fops().write_iter
        } else {
            self.fops().read_iter
        }
    }

    /// Clones the reference.
    pub fn clone_ref(&self) -> Self {
        Self {
            file: self.file.clone(),
        }
    }
}

/// `huge_encode_dev()`: the new 32-bit encoding of a device number.
fn huge_encode_dev(dev: u32) -> u64 {
    let major = u64::from(dev >> 20);
    let minor = u64::from(dev & 0xfffff);
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}
