// SPDX-License-Identifier: GPL-2.0
/*
 * One-line wrappers of static inline kernel functions that kernel::bindings
 * cannot reach, in the manner of rust/helpers/. Nothing else belongs here.
 */
#include <linux/blkdev.h>
#include <linux/blk-mq.h>

/* Called from Rust only (src/sys/blk.rs), hence no header. */
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
