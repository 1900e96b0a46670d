// SPDX-License-Identifier: GPL-2.0
/*
 * The C helpers of rloop, the .c files of src/helpers/: wrappers of static
 * inline kernel functions, macros and flag tests that kernel::bindings
 * cannot reach, in the manner of rust/helpers/: each is a line or a loop,
 * with no driver logic, one file per kernel object. Called from src/sys/
 * only, hence the prototypes in the .c files rather than here: this header
 * holds only the includes they share.
 */
#ifndef RLOOP_HELPERS_H
#define RLOOP_HELPERS_H

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
#include <linux/mount.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/sched/task_stack.h>
#include <linux/statfs.h>
#include <linux/timekeeping.h>
#include <linux/workqueue.h>

#endif /* RLOOP_HELPERS_H */
