// SPDX-License-Identifier: GPL-2.0
/* Backing file helpers: struct file, inode, kiocb, and what direct I/O needs of them. */
#include "helpers.h"

/* struct file and inode */
bool rloop_file_mode_write(struct file *file);
loff_t rloop_i_size_read(struct inode *inode);

bool rloop_file_mode_write(struct file *file)
{
	return file->f_mode & FMODE_WRITE;
}

loff_t rloop_i_size_read(struct inode *inode)
{
	return i_size_read(inode);
}

const struct path *rloop_file_path(struct file *file);

const struct path *rloop_file_path(struct file *file)
{
	return &file->f_path;
}

/* struct kstatfs is opaque to bindgen. */
int rloop_file_fs_block_size(struct file *file, u32 *bsize);

int rloop_file_fs_block_size(struct file *file, u32 *bsize)
{
	struct kstatfs st;
	int err = vfs_statfs(&file->f_path, &st);

	if (!err)
		*bsize = st.f_bsize;
	return err;
}

/* file_path() of the backing file, moved to the start of a sysfs page. */
ssize_t rloop_file_path_show(struct file *file, char *buf);

ssize_t rloop_file_path_show(struct file *file, char *buf)
{
	char *p = file_path(file, buf, PAGE_SIZE - 1);
	ssize_t ret;

	if (IS_ERR(p))
		return PTR_ERR(p);
	ret = strlen(p);
	memmove(buf, p, ret);
	buf[ret++] = '\n';
	buf[ret] = 0;
	return ret;
}

/* Direct I/O */
bool rloop_file_can_odirect(struct file *file);
bool rloop_file_o_direct(struct file *file);
bool rloop_file_nowait(struct file *file);
bool rloop_file_buf_rasync(struct file *file);
bool rloop_file_read_touches_atime(struct file *file);
int rloop_file_statx_dioalign(struct file *file, u32 *offset_align, u32 *mem_align);
bool rloop_file_sb_bdev_align(struct file *file, u32 *lbs, u32 *dma_mask);
void rloop_kiocb_start_write(struct kiocb *iocb);
void rloop_kiocb_end_write(struct kiocb *iocb);

bool rloop_file_can_odirect(struct file *file)
{
	return file->f_mode & FMODE_CAN_ODIRECT;
}

bool rloop_file_nowait(struct file *file)
{
	return file->f_mode & FMODE_NOWAIT;
}

bool rloop_file_o_direct(struct file *file)
{
	return file->f_flags & O_DIRECT;
}

/* The file's buffered read_iter honours IOCB_NOWAIT (as io_uring checks). */
bool rloop_file_buf_rasync(struct file *file)
{
	return file->f_op->fop_flags & FOP_BUFFER_RASYNC;
}

/*
 * A buffered read of the file may update its access time now: what
 * file_accessed() at the end of filemap_read() would find. The checks of
 * atime_needs_update() and relatime_need_update() (fs/inode.c; neither is
 * exported), but for two that can only say "no update" (an unmapped id;
 * an atime equal to the current time), so that this may say yes where
 * the read would not update, never the other way round.
 */
bool rloop_file_read_touches_atime(struct file *file)
{
	struct vfsmount *mnt = file->f_path.mnt;
	struct inode *inode = file_inode(file);
	struct timespec64 atime, mtime, ctime, now;

	if (file->f_flags & O_NOATIME)
		return false;
	if ((inode->i_flags & S_NOATIME) || IS_NOATIME(inode))
		return false;
	if (mnt->mnt_flags & MNT_NOATIME)
		return false;
	if (!(mnt->mnt_flags & MNT_RELATIME))
		return true;
	atime = inode_get_atime(inode);
	mtime = inode_get_mtime(inode);
	ctime = inode_get_ctime(inode);
	if (timespec64_compare(&mtime, &atime) >= 0 ||
	    timespec64_compare(&ctime, &atime) >= 0)
		return true;
	ktime_get_coarse_real_ts64(&now);
	return (long)(now.tv_sec - atime.tv_sec) >= 24 * 60 * 60;
}

/* STATX_DIOALIGN of the file; -EOPNOTSUPP when the filesystem has none. */
int rloop_file_statx_dioalign(struct file *file, u32 *offset_align, u32 *mem_align)
{
	struct kstat st;
	int err = vfs_getattr(&file->f_path, &st, STATX_DIOALIGN, 0);

	if (err)
		return err;
	if (!(st.result_mask & STATX_DIOALIGN))
		return -EOPNOTSUPP;
	*offset_align = st.dio_offset_align;
	*mem_align = st.dio_mem_align;
	return 0;
}

/* The logical block size and DMA alignment of the file's sb->s_bdev. */
bool rloop_file_sb_bdev_align(struct file *file, u32 *lbs, u32 *dma_mask)
{
	struct block_device *sb_bdev = file->f_mapping->host->i_sb->s_bdev;

	if (!sb_bdev)
		return false;
	*lbs = bdev_logical_block_size(sb_bdev);
	*dma_mask = bdev_dma_alignment(sb_bdev);
	return true;
}

void rloop_kiocb_start_write(struct kiocb *iocb)
{
	kiocb_start_write(iocb);
}

void rloop_kiocb_end_write(struct kiocb *iocb)
{
	kiocb_end_write(iocb);
}

/*
 * Direct submission from queue_rq with IOCB_NOWAIT.
 *
 * kiocb_start_write() without the wait: the write freeze protection, or
 * false while the filesystem is frozen (or being frozen).
 */
bool rloop_kiocb_start_write_nowait(struct kiocb *iocb);
int rloop_iocb_nowait(void);

bool rloop_kiocb_start_write_nowait(struct kiocb *iocb)
{
	struct super_block *sb = file_inode(iocb->ki_filp)->i_sb;

	if (!sb_start_write_trylock(sb))
		return false;
	/* As kiocb_start_write(): the protection is dropped in another context. */
	__sb_writers_release(sb, SB_FREEZE_WRITE);
	iocb->ki_flags |= IOCB_WRITE;
	return true;
}

/* IOCB_NOWAIT, a cast bindgen cannot evaluate. */
int rloop_iocb_nowait(void)
{
	return IOCB_NOWAIT;
}
