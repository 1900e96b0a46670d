// SPDX-License-Identifier: GPL-2.0
/*
 * Wrappers of static inline kernel functions, macros and flag tests that
 * kernel::bindings cannot reach, in the manner of rust/helpers/: each is a
 * line or a loop, with no driver logic. Called from src/sys/ only, hence
 * the prototypes here rather than in a header.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/blk-mq.h>
#include <linux/fs.h>
#include <linux/sched/mm.h>
#include <linux/statfs.h>

unsigned int rloop_disk_openers(struct gendisk *disk);
void rloop_disk_set_part_scan(struct gendisk *disk, bool enable);

unsigned int rloop_disk_openers(struct gendisk *disk)
{
	return disk_openers(disk);
}

void rloop_disk_set_part_scan(struct gendisk *disk, bool enable)
{
	if (enable)
		clear_bit(GD_SUPPRESS_PART_SCAN, &disk->state);
	else
		set_bit(GD_SUPPRESS_PART_SCAN, &disk->state);
}

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

/* struct request */
unsigned int rloop_rq_op(struct request *rq);
sector_t rloop_rq_pos(struct request *rq);
unsigned int rloop_rq_bytes(struct request *rq);
bool rloop_rq_nounmap(struct request *rq);
unsigned int rloop_rq_nr_bvec(struct request *rq);
unsigned int rloop_rq_bvecs(struct request *rq, struct bio_vec *out, unsigned int max);
void rloop_rq_zero_fill(struct request *rq);

unsigned int rloop_rq_op(struct request *rq)
{
	return req_op(rq);
}

sector_t rloop_rq_pos(struct request *rq)
{
	return blk_rq_pos(rq);
}

unsigned int rloop_rq_bytes(struct request *rq)
{
	return blk_rq_bytes(rq);
}

bool rloop_rq_nounmap(struct request *rq)
{
	return rq->cmd_flags & REQ_NOUNMAP;
}

unsigned int rloop_rq_nr_bvec(struct request *rq)
{
	return blk_rq_nr_bvec(rq);
}

/* rq_for_each_bvec into an array: the bios may start mid-bvec after splits. */
unsigned int rloop_rq_bvecs(struct request *rq, struct bio_vec *out, unsigned int max)
{
	struct req_iterator iter;
	struct bio_vec bv;
	unsigned int n = 0;

	rq_for_each_bvec(bv, rq, iter) {
		if (n == max)
			break;
		out[n++] = bv;
	}
	return n;
}

void rloop_rq_zero_fill(struct request *rq)
{
	struct bio *bio;

	__rq_for_each_bio(bio, rq)
		zero_fill_bio(bio);
}

/* gendisk and request_queue */
bool rloop_mode_write(blk_mode_t mode);
void rloop_disk_uevent_change(struct gendisk *disk);
void rloop_disk_suppress_uevents(struct gendisk *disk, bool suppress);
unsigned int rloop_queue_freeze(struct request_queue *q);
void rloop_queue_unfreeze(struct request_queue *q, unsigned int memflags);
void rloop_limits_start_update(struct request_queue *q, struct queue_limits *lim);
void rloop_limits_set_features(struct queue_limits *lim, bool write_cache, bool rotational);
int rloop_disk_rescan_partitions(struct gendisk *disk, bool open_mutex_held);

bool rloop_mode_write(blk_mode_t mode)
{
	return mode & BLK_OPEN_WRITE;
}

void rloop_disk_uevent_change(struct gendisk *disk)
{
	kobject_uevent(&disk_to_dev(disk)->kobj, KOBJ_CHANGE);
}

void rloop_disk_suppress_uevents(struct gendisk *disk, bool suppress)
{
	dev_set_uevent_suppress(disk_to_dev(disk), suppress);
}

unsigned int rloop_queue_freeze(struct request_queue *q)
{
	return blk_mq_freeze_queue(q);
}

void rloop_queue_unfreeze(struct request_queue *q, unsigned int memflags)
{
	blk_mq_unfreeze_queue(q, memflags);
}

void rloop_limits_start_update(struct request_queue *q, struct queue_limits *lim)
{
	*lim = queue_limits_start_update(q);
}

void rloop_limits_set_features(struct queue_limits *lim, bool write_cache, bool rotational)
{
	lim->features &= ~(BLK_FEAT_WRITE_CACHE | BLK_FEAT_ROTATIONAL);
	if (write_cache)
		lim->features |= BLK_FEAT_WRITE_CACHE;
	if (rotational)
		lim->features |= BLK_FEAT_ROTATIONAL;
}

/* bdev_disk_changed() needs open_mutex; release callbacks already hold it. */
int rloop_disk_rescan_partitions(struct gendisk *disk, bool open_mutex_held)
{
	int rc;

	if (open_mutex_held)
		return bdev_disk_changed(disk, false);
	mutex_lock(&disk->open_mutex);
	rc = bdev_disk_changed(disk, false);
	mutex_unlock(&disk->open_mutex);
	return rc;
}

/* misc */
const struct path *rloop_file_path(struct file *file);
unsigned int rloop_noio_save(void);
void rloop_noio_restore(unsigned int flags);

const struct path *rloop_file_path(struct file *file)
{
	return &file->f_path;
}

unsigned int rloop_noio_save(void)
{
	return memalloc_noio_save();
}

void rloop_noio_restore(unsigned int flags)
{
	memalloc_noio_restore(flags);
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
