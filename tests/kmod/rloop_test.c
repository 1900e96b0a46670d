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

static int read_one(dev_t devt)
{
	struct file *bdev_file;
	struct page *page;
	struct bio *bio;
	int err;

	bdev_file = bdev_file_open_by_dev(devt, BLK_OPEN_READ, NULL, NULL);
	if (IS_ERR(bdev_file))
		return PTR_ERR(bdev_file);
	page = alloc_page(GFP_KERNEL);
	if (!page) {
		err = -ENOMEM;
		goto out;
	}
	bio = bio_alloc(file_bdev(bdev_file), 1, REQ_OP_READ, GFP_KERNEL);
	bio->bi_iter.bi_sector = 0;
	if (read_bytes > 0)
		__bio_add_page(bio, page, min_t(int, read_bytes, PAGE_SIZE), 0);
	err = submit_bio_wait(bio);
	bio_put(bio);
	__free_page(page);
out:
	fput(bdev_file);
	return err;
}

static int __init rloop_test_init(void)
{
	int err;

	if (warn) {
		WARN(1, "rloop_test: warning on request\n");
		return 0;
	}
	if (read_minor >= 0) {
		err = read_one(MKDEV(7, read_minor));
		pr_info("rloop_test: read of %d bytes from 7:%d: %d\n",
			read_bytes, read_minor, err);
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
