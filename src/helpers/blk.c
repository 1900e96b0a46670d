// SPDX-License-Identifier: GPL-2.0
/* Block layer helpers: gendisk, request_queue and its limits, struct request, block devices. */
#include "helpers.h"

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

/* struct request */
unsigned int rloop_rq_op(struct request *rq);
sector_t rloop_rq_pos(struct request *rq);
unsigned int rloop_rq_bytes(struct request *rq);
bool rloop_rq_nounmap(struct request *rq);
unsigned int rloop_rq_nr_bvec(struct request *rq);
unsigned int rloop_rq_bvecs(struct request *rq, struct bio_vec *out, unsigned int max);
void rloop_rq_zero_fill(struct request *rq);
unsigned int rloop_rq_queue_busy(struct request *rq);
bool rloop_rq_disk_claimed(struct request *rq);

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

/*
 * The driver tags in use on rq's hardware queue, rq's own included.
 *
 * Not sbitmap_weight(): it counts the set bits of every word, then the
 * freed ones (->cleared) of every word, and a deferred clear between the
 * two passes (an allocation folding ->cleared into ->word) counts every
 * tag it folds as busy, up to a whole word of them. Here each word is read
 * on its own: a bit counts if it is set in two reads of ->word around the
 * read of ->cleared, and not in ->cleared. Tags allocated meanwhile may be
 * missed; the count is a hint.
 */
unsigned int rloop_rq_queue_busy(struct request *rq)
{
	const struct sbitmap *sb = &rq->mq_hctx->tags->bitmap_tags.sb;
	unsigned int i, busy = 0;

	for (i = 0; i < sb->map_nr; i++) {
		const struct sbitmap_word *w = &sb->map[i];
		unsigned long set = READ_ONCE(w->word);
		unsigned long cleared = READ_ONCE(w->cleared);

		set &= READ_ONCE(w->word) & ~cleared;
		busy += bitmap_weight(&set, __map_depth(sb, i));
	}
	return busy;
}

/*
 * Whether a holder has the request's disk, or one of its partitions, open
 * exclusively: a mounted filesystem, device-mapper, mkfs (bd_finish_claiming
 * counts a partition's claim in the whole disk's bd_holders too). Read
 * without bdev_lock: a hint, as a claim can come or go at any moment; the
 * submissions of a holder come after its claim, in its own task or through
 * the block layer's queues, and see it.
 */
bool rloop_rq_disk_claimed(struct request *rq)
{
	return READ_ONCE(rq->q->disk->part0->bd_holders) > 0;
}

/* gendisk and request_queue */
bool rloop_mode_write(blk_mode_t mode);
void rloop_disk_uevent_change(struct gendisk *disk);
void rloop_disk_suppress_uevents(struct gendisk *disk, bool suppress);
unsigned int rloop_queue_freeze(struct request_queue *q);
void rloop_queue_unfreeze(struct request_queue *q, unsigned int memflags);
int rloop_mutex_lock_killable(struct mutex *lock);
void rloop_limits_start_update(struct request_queue *q, struct queue_limits *lim);
bool rloop_limits_try_start_update(struct request_queue *q, struct queue_limits *lim);
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

int rloop_mutex_lock_killable(struct mutex *lock)
{
	return mutex_lock_killable(lock);
}

void rloop_limits_start_update(struct request_queue *q, struct queue_limits *lim)
{
	*lim = queue_limits_start_update(q);
}

/* queue_limits_start_update() if limits_lock is free: true if taken. */
bool rloop_limits_try_start_update(struct request_queue *q, struct queue_limits *lim)
{
	if (!mutex_trylock(&q->limits_lock))
		return false;
	*lim = q->limits;
	return true;
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

/* Block device properties of a backing file. */
bool rloop_mode_excl(blk_mode_t mode);
struct block_device *rloop_backing_bdev(struct file *file);
bool rloop_bdev_rot(struct block_device *bdev);
unsigned int rloop_bdev_write_zeroes_sectors(struct block_device *bdev);
unsigned int rloop_bdev_discard_granularity(struct block_device *bdev);

bool rloop_mode_excl(blk_mode_t mode)
{
	return mode & BLK_OPEN_EXCL;
}

/* The block device a file is, or the one its filesystem lives on, or NULL. */
struct block_device *rloop_backing_bdev(struct file *file)
{
	struct inode *inode = file->f_mapping->host;

	if (S_ISBLK(inode->i_mode))
		return I_BDEV(inode);
	return inode->i_sb->s_bdev;
}

bool rloop_bdev_rot(struct block_device *bdev)
{
	return bdev_rot(bdev);
}

unsigned int rloop_bdev_write_zeroes_sectors(struct block_device *bdev)
{
	return bdev_write_zeroes_sectors(bdev);
}

unsigned int rloop_bdev_discard_granularity(struct block_device *bdev)
{
	return bdev_discard_granularity(bdev);
}

/*
 * The iov_iter of a one-bio request, over the bio's own bvec array (the
 * bio may start mid-bvec after a split, hence the offset). False for a
 * request of several bios, whose bvecs must be gathered first.
 */
bool rloop_rq_iter_single(struct request *rq, struct iov_iter *iter, unsigned int dir);

bool rloop_rq_iter_single(struct request *rq, struct iov_iter *iter, unsigned int dir)
{
	struct bio *bio = rq->bio;

	if (bio != rq->biotail)
		return false;
	iov_iter_bvec(iter, dir, __bvec_iter_bvec(bio->bi_io_vec, bio->bi_iter),
		      blk_rq_nr_bvec(rq), blk_rq_bytes(rq));
	iter->iov_offset = bio->bi_iter.bi_offset;
	return true;
}

unsigned short rloop_rq_ioprio(struct request *rq);

unsigned short rloop_rq_ioprio(struct request *rq)
{
	return req_get_ioprio(rq);
}

/* queue_limits_cancel_update() */
void rloop_limits_cancel_update(struct request_queue *q);

void rloop_limits_cancel_update(struct request_queue *q)
{
	queue_limits_cancel_update(q);
}

#ifdef CONFIG_COMPAT
/* compat_ptr() is a static inline, defined per architecture. */
unsigned long rloop_compat_ptr(unsigned long arg);

unsigned long rloop_compat_ptr(unsigned long arg)
{
	return (unsigned long)compat_ptr(arg);
}
#endif
