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
#include <linux/blk-cgroup.h>
#include <linux/cgroup.h>
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/kthread.h>
#include <linux/llist.h>
#include <linux/memcontrol.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/sched/task_stack.h>
#include <linux/statfs.h>
#include <linux/workqueue.h>

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
unsigned int rloop_rq_queue_busy(struct request *rq);

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

/* misc */
const struct path *rloop_file_path(struct file *file);
unsigned int rloop_worker_enter(void);
void rloop_worker_exit(unsigned int old);
void rloop_cond_resched(void);

const struct path *rloop_file_path(struct file *file)
{
	return &file->f_path;
}

#define RLOOP_WORKER_FLAGS (PF_LOCAL_THROTTLE | PF_MEMALLOC_NOIO)

/*
 * The task flags of the loop worker, as loop_process_work() sets them: no
 * I/O from its allocations, and its buffered writes to the backing file
 * throttled only against that file's device, not against the dirty pages
 * of the filesystem on the loop device it is cleaning. Returns the flags'
 * old values for rloop_worker_exit().
 */
unsigned int rloop_worker_enter(void)
{
	unsigned int old = current->flags & RLOOP_WORKER_FLAGS;

	current->flags |= RLOOP_WORKER_FLAGS;
	return old;
}

void rloop_worker_exit(unsigned int old)
{
	current->flags = (current->flags & ~RLOOP_WORKER_FLAGS) | old;
}

/* A macro or a static call, depending on the preemption model. */
void rloop_cond_resched(void)
{
	cond_resched();
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

/*
 * The sysfs "loop/" group of a bound device. Rust cannot yet define static
 * device_attribute tables, so the table is here; every show goes to the
 * Rust callback registered with rloop_sysfs_set_show().
 */
static ssize_t (*rloop_attr_show_fn)(void *private_data, int which, char *buf);
static ssize_t (*rloop_attr_store_fn)(void *private_data, int which, const char *buf,
				      size_t count);

void rloop_sysfs_set_show(ssize_t (*show)(void *private_data, int which, char *buf));
void rloop_sysfs_set_store(ssize_t (*store)(void *private_data, int which, const char *buf,
					    size_t count));
int rloop_disk_sysfs_add(struct gendisk *disk);
void rloop_disk_sysfs_remove(struct gendisk *disk);

void rloop_sysfs_set_show(ssize_t (*show)(void *private_data, int which, char *buf))
{
	rloop_attr_show_fn = show;
}

void rloop_sysfs_set_store(ssize_t (*store)(void *private_data, int which, const char *buf,
					    size_t count))
{
	rloop_attr_store_fn = store;
}

#define RLOOP_ATTR_SHOW(_name, _which)						\
static ssize_t rloop_attr_##_name##_show(struct device *dev,		\
		struct device_attribute *attr, char *buf)			\
{									\
	return rloop_attr_show_fn(dev_to_disk(dev)->private_data, _which, buf); \
}

#define RLOOP_ATTR_RO(_name, _which)						\
RLOOP_ATTR_SHOW(_name, _which)							\
static struct device_attribute rloop_attr_##_name =			\
	__ATTR(_name, 0444, rloop_attr_##_name##_show, NULL)

#define RLOOP_ATTR_RW(_name, _which)						\
RLOOP_ATTR_SHOW(_name, _which)							\
static ssize_t rloop_attr_##_name##_store(struct device *dev,		\
		struct device_attribute *attr, const char *buf, size_t count)	\
{									\
	return rloop_attr_store_fn(dev_to_disk(dev)->private_data, _which, \
				   buf, count);				\
}									\
static struct device_attribute rloop_attr_##_name =			\
	__ATTR(_name, 0644, rloop_attr_##_name##_show, rloop_attr_##_name##_store)

/* The indices are those of sys::blk::SysfsAttr. */
RLOOP_ATTR_RO(backing_file, 0);
RLOOP_ATTR_RO(offset, 1);
RLOOP_ATTR_RO(sizelimit, 2);
RLOOP_ATTR_RO(autoclear, 3);
RLOOP_ATTR_RO(partscan, 4);
RLOOP_ATTR_RO(dio, 5);
RLOOP_ATTR_RW(nowait, 6);
RLOOP_ATTR_RW(nowait_depth, 7);
RLOOP_ATTR_RW(nr_hw_queues, 8);

static struct attribute *rloop_attrs[] = {
	&rloop_attr_backing_file.attr,
	&rloop_attr_offset.attr,
	&rloop_attr_sizelimit.attr,
	&rloop_attr_autoclear.attr,
	&rloop_attr_partscan.attr,
	&rloop_attr_dio.attr,
	&rloop_attr_nowait.attr,
	&rloop_attr_nowait_depth.attr,
	&rloop_attr_nr_hw_queues.attr,
	NULL,
};

static const struct attribute_group rloop_attr_group = {
	.name = "loop",
	.attrs = rloop_attrs,
};

int rloop_disk_sysfs_add(struct gendisk *disk)
{
	return sysfs_create_group(&disk_to_dev(disk)->kobj, &rloop_attr_group);
}

void rloop_disk_sysfs_remove(struct gendisk *disk)
{
	sysfs_remove_group(&disk_to_dev(disk)->kobj, &rloop_attr_group);
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

/* Direct I/O */
bool rloop_file_can_odirect(struct file *file);
bool rloop_file_o_direct(struct file *file);
bool rloop_file_nowait(struct file *file);
bool rloop_file_buf_rasync(struct file *file);
int rloop_file_statx_dioalign(struct file *file, u32 *offset_align, u32 *mem_align);
bool rloop_file_sb_bdev_align(struct file *file, u32 *lbs, u32 *dma_mask);
unsigned short rloop_rq_ioprio(struct request *rq);
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

unsigned short rloop_rq_ioprio(struct request *rq)
{
	return req_get_ioprio(rq);
}

void rloop_kiocb_start_write(struct kiocb *iocb)
{
	kiocb_start_write(iocb);
}

void rloop_kiocb_end_write(struct kiocb *iocb)
{
	kiocb_end_write(iocb);
}

/* queue_limits_cancel_update() */
void rloop_limits_cancel_update(struct request_queue *q);

void rloop_limits_cancel_update(struct request_queue *q)
{
	queue_limits_cancel_update(q);
}

/*
 * Direct submission from queue_rq with IOCB_NOWAIT.
 *
 * kiocb_start_write() without the wait: the write freeze protection, or
 * false while the filesystem is frozen (or being frozen).
 */
bool rloop_kiocb_start_write_nowait(struct kiocb *iocb);
bool rloop_may_submit_inline(void);
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

/*
 * Whether the current task may call into the backing file's filesystem
 * from queue_rq: not while it is inside a filesystem transaction (an upper
 * filesystem's journal handle in journal_info would be taken for the lower
 * one's), and not from memory reclaim.
 */
bool rloop_may_submit_inline(void)
{
	/*
	 * PF_MEMALLOC_NOIO: already in a submission scope (or another NOIO
	 * section). A loop device on a file on another loop device would
	 * otherwise nest one submission in the other, a stack frame set per
	 * level; the inner device's worker takes it instead.
	 */
	return !current->journal_info &&
	       !(current->flags & (PF_MEMALLOC | PF_MEMALLOC_NOIO));
}

/*
 * The bytes of the current task's stack left below the stack pointer (the
 * stack grows down on every architecture this module builds for), or 0
 * when the stack pointer is not on the task's stack (an interrupt stack).
 * current_stack_pointer, task_stack_page() and THREAD_SIZE are a register
 * variable, a static inline and a macro, which bindgen cannot reach.
 */
unsigned long rloop_stack_left(void);

unsigned long rloop_stack_left(void)
{
	unsigned long sp = current_stack_pointer;
	unsigned long low = (unsigned long)task_stack_page(current);

	if (sp < low || sp >= low + THREAD_SIZE)
		return 0;
	return sp - low;
}

/*
 * The scope of a submission to the backing file from queue_rq: no I/O from
 * reclaim (memalloc_noio_save), and the submitter's plug and bio list set
 * aside.
 *
 * - queue_rq may run from a flush of that very plug (blk_finish_plug, or a
 *   full plug in blk_add_rq_to_plug), in the middle of taking requests off
 *   its list: a request of the backing device added to it there is lost or
 *   corrupts the list (a NULL dereference in blk_add_rq_to_plug, found by
 *   the ioctl fuzzer with a loop device read through the page cache). With
 *   no plug, the backing filesystem plugs and flushes its own bios.
 * - queue_rq may run from submit_bio itself (blk_mq_try_issue_directly),
 *   where current->bio_list collects the bios submitted meanwhile, to be
 *   issued only once the outer submission returns. The backing filesystem
 *   may wait for one of its own bios before it returns (ext4 reading an
 *   extent tree block in ext4_map_blocks, found by the benchmark's ext4
 *   on a DIO loop device): it would wait forever. With no list, its bios
 *   are issued at once; the recursion is one level deep, since a
 *   submission does not nest in another (rloop_may_submit_inline).
 */
struct rloop_inline_saved {
	struct blk_plug *plug;
	struct bio_list *bio_list;
};

unsigned int rloop_inline_submit_enter(struct rloop_inline_saved *saved);
void rloop_inline_submit_exit(unsigned int flags, struct rloop_inline_saved *saved);

unsigned int rloop_inline_submit_enter(struct rloop_inline_saved *saved)
{
	/*
	 * PF_BLOCK_TS says that current->plug caches a timestamp, which the
	 * scheduler clears through current->plug at the next switch: drop it
	 * first, or a preemption with the plug set aside dereferences NULL.
	 * Nothing sets it again while there is no plug.
	 */
	blk_plug_invalidate_ts();
	saved->plug = current->plug;
	current->plug = NULL;
	saved->bio_list = current->bio_list;
	current->bio_list = NULL;
	return memalloc_noio_save();
}

void rloop_inline_submit_exit(unsigned int flags, struct rloop_inline_saved *saved)
{
	memalloc_noio_restore(flags);
	/*
	 * The backing filesystem's own plug is finished, its flag cleared,
	 * and every submit_bio it made has returned.
	 */
	WARN_ON_ONCE(current->plug || (current->flags & PF_BLOCK_TS) || current->bio_list);
	current->plug = saved->plug;
	current->bio_list = saved->bio_list;
}

/*
 * alloc_workqueue() is a macro (for its lockdep key); the name goes through
 * "%s" so that it is never taken for a format.
 */
struct workqueue_struct *rloop_alloc_workqueue(const char *name,
					       unsigned int flags);
void rloop_queue_rq_work(struct workqueue_struct *wq, struct work_struct *work,
			 work_func_t fn);
bool rloop_llist_add(struct llist_node *node, struct llist_head *head);
struct llist_node *rloop_llist_del_all(struct llist_head *head);

struct workqueue_struct *rloop_alloc_workqueue(const char *name,
					       unsigned int flags)
{
	return alloc_workqueue("%s", flags, 0, name);
}

void rloop_queue_rq_work(struct workqueue_struct *wq, struct work_struct *work,
			 work_func_t fn)
{
	INIT_WORK(work, fn);
	queue_work(wq, work);
}

/* The request list of a batching worker (llist.h's inline functions). */
bool rloop_llist_add(struct llist_node *node, struct llist_head *head)
{
	return llist_add(node, head);
}

struct llist_node *rloop_llist_del_all(struct llist_head *head)
{
	return llist_del_all(head);
}

#ifdef CONFIG_COMPAT
/* compat_ptr() is a static inline, defined per architecture. */
unsigned long rloop_compat_ptr(unsigned long arg);

unsigned long rloop_compat_ptr(unsigned long arg)
{
	return (unsigned long)compat_ptr(arg);
}
#endif

/*
 * The cgroup that issued a request: the blkcg of its first bio, as
 * loop_queue_rq() records it, or NULL for the root (or no cgroups).
 */
static struct cgroup_subsys_state *rloop_rq_blkcg(struct request *rq)
{
#ifdef CONFIG_BLK_CGROUP
	struct cgroup_subsys_state *css = rq->bio ? bio_blkcg_css(rq->bio) : NULL;

	return css == blkcg_root_css ? NULL : css;
#else
	return NULL;
#endif
}

/*
 * Charging a request's I/O to its issuer, as loop_handle_cmd() does: the
 * worker's bios go to the issuer's blkcg (kthread_associate_blkcg) and its
 * allocations, the backing file's page cache among them, to the issuer's
 * memcg (set_active_memcg). Nothing for the root cgroup, which is a
 * worker's own.
 */
struct rloop_issuer_saved {
	struct cgroup_subsys_state *memcg_css;
	struct mem_cgroup *old_memcg;
	bool blkcg;
};

void rloop_issuer_enter(struct request *rq, struct rloop_issuer_saved *saved);
void rloop_issuer_exit(struct rloop_issuer_saved *saved);
bool rloop_rq_issued_by_current(struct request *rq);

void rloop_issuer_enter(struct request *rq, struct rloop_issuer_saved *saved)
{
	struct cgroup_subsys_state *css = rloop_rq_blkcg(rq);

	saved->memcg_css = NULL;
	saved->old_memcg = NULL;
	saved->blkcg = false;
	if (!css)
		return;
	kthread_associate_blkcg(css);
	saved->blkcg = true;
#ifdef CONFIG_MEMCG
	saved->memcg_css = cgroup_get_e_css(css->cgroup, &memory_cgrp_subsys);
	if (saved->memcg_css)
		saved->old_memcg = set_active_memcg(mem_cgroup_from_css(saved->memcg_css));
#endif
}

void rloop_issuer_exit(struct rloop_issuer_saved *saved)
{
#ifdef CONFIG_MEMCG
	if (saved->memcg_css) {
		set_active_memcg(saved->old_memcg);
		css_put(saved->memcg_css);
	}
#endif
	if (saved->blkcg)
		kthread_associate_blkcg(NULL);
}

/*
 * Whether the bios the current task submits go to the request's blkcg: a
 * task outside the kernel's threads in that very cgroup, or a kernel
 * thread and the root cgroup (a kernel thread's association with another
 * one, kthread_blkcg(), is not exported, so one is never taken as the
 * issuer of a cgroup's request).
 */
bool rloop_rq_issued_by_current(struct request *rq)
{
#ifdef CONFIG_BLK_CGROUP
	struct cgroup_subsys_state *css = rloop_rq_blkcg(rq);
	bool same;

	if (current->flags & PF_KTHREAD)
		return !css;
	rcu_read_lock();
	same = task_css(current, io_cgrp_id) == (css ?: blkcg_root_css);
	rcu_read_unlock();
	return same;
#else
	return true;
#endif
}
