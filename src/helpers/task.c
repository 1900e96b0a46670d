// SPDX-License-Identifier: GPL-2.0
/* The current task's state around a submission: worker flags, the inline-submission scope, the stack, the issuing cgroup. */
#include "helpers.h"

unsigned int rloop_worker_enter(void);
void rloop_worker_exit(unsigned int old);
void rloop_cond_resched(void);

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

bool rloop_may_submit_inline(void);

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

u64 rloop_rq_cgroup_id(struct request *rq);
void rloop_issuer_enter(struct request *rq, struct rloop_issuer_saved *saved);
void rloop_issuer_exit(struct rloop_issuer_saved *saved);
bool rloop_rq_issued_by_current(struct request *rq);

/*
 * The id of the cgroup that issued a request (cgroup_id() of its blkcg's
 * cgroup), or 0 for the root. Ids are never reused while the system runs.
 */
u64 rloop_rq_cgroup_id(struct request *rq)
{
	struct cgroup_subsys_state *css = rloop_rq_blkcg(rq);

	return css ? cgroup_id(css->cgroup) : 0;
}

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
