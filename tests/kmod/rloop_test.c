// SPDX-License-Identifier: GPL-2.0
/*
 * rloop_test: a test-only helper module for the guest suite. Loading it does
 * one thing, chosen by a parameter, and the load fails with the result:
 *
 *   warn=1          WARN() once, to check that the harness catches splats.
 *   read_minor=N    submit one read bio of read_bytes (default 4096) to
 *                   block device 7:N and fail the load with its errno (0
 *                   loads fine). A 4 KiB bio to a disk of capacity 0, as an
 *                   unbound loop device has, fails in the block core's
 *                   end-of-device check; an empty one (read_bytes=0) passes
 *                   that check and reaches the driver's queue_rq.
 *   write_minor=N   submit one bio of write_op (write, discard or
 *                   write_zeroes) of 4 KiB at sector 0 of block device 7:N,
 *                   opened for reading only, and fail the load with its
 *                   errno. On a read-only disk the block core only warns
 *                   ("Trying to write to read-only block-device") and lets
 *                   the bio through: the driver must fail it.
 */
#include <linux/bio.h>
#include <linux/blkdev.h>
#include <linux/module.h>

static bool warn;
module_param(warn, bool, 0444);
static int read_minor = -1;
module_param(read_minor, int, 0444);
static int read_bytes = PAGE_SIZE;
module_param(read_bytes, int, 0444);
static int write_minor = -1;
module_param(write_minor, int, 0444);
static char *write_op = "write";
module_param(write_op, charp, 0444);

/* One bio of @op at sector 0 of 7:@minor, opened for reading; its errno. */
static int bio_one(int minor, blk_opf_t op, int bytes)
{
	struct file *bdev_file;
	struct page *page = NULL;
	struct bio *bio;
	int err;

	bdev_file = bdev_file_open_by_dev(MKDEV(7, minor), BLK_OPEN_READ, NULL, NULL);
	if (IS_ERR(bdev_file))
		return PTR_ERR(bdev_file);
	if (op == REQ_OP_READ || op == REQ_OP_WRITE) {
		page = alloc_page(GFP_KERNEL);
		if (!page) {
			err = -ENOMEM;
			goto out;
		}
		memset(page_address(page), 0xa5, PAGE_SIZE);
	}
	bio = bio_alloc(file_bdev(bdev_file), page ? 1 : 0, op, GFP_KERNEL);
	bio->bi_iter.bi_sector = 0;
	if (page && bytes > 0)
		__bio_add_page(bio, page, min_t(int, bytes, PAGE_SIZE), 0);
	else if (!page)
		bio->bi_iter.bi_size = bytes;
	err = submit_bio_wait(bio);
	bio_put(bio);
	if (page)
		__free_page(page);
out:
	fput(bdev_file);
	return err;
}

static int __init rloop_test_init(void)
{
	blk_opf_t op;
	int err;

	if (warn) {
		WARN(1, "rloop_test: warning on request\n");
		return 0;
	}
	if (read_minor >= 0) {
		err = bio_one(read_minor, REQ_OP_READ, read_bytes);
		pr_info("rloop_test: read of %d bytes from 7:%d: %d\n",
			read_bytes, read_minor, err);
		return err;
	}
	if (write_minor >= 0) {
		if (!strcmp(write_op, "write"))
			op = REQ_OP_WRITE;
		else if (!strcmp(write_op, "discard"))
			op = REQ_OP_DISCARD;
		else if (!strcmp(write_op, "write_zeroes"))
			op = REQ_OP_WRITE_ZEROES;
		else
			return -EINVAL;
		err = bio_one(write_minor, op, PAGE_SIZE);
		pr_info("rloop_test: %s of %lu bytes to 7:%d: %d\n",
			write_op, PAGE_SIZE, write_minor, err);
		return err;
	}
	return 0;
}

static void __exit rloop_test_exit(void)
{
}

module_init(rloop_test_init);
module_exit(rloop_test_exit);
MODULE_DESCRIPTION("rloop guest test helper");
MODULE_LICENSE("GPL");
