// SPDX-License-Identifier: GPL-2.0
/* Workqueue and lock-free list helpers of the batching worker. */
#include "helpers.h"

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
