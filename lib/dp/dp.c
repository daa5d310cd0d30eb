/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Control side of the data plane: building configurations from plans, publishing them, and
 * reading counters. Callers serialise every call (the device module holds its lock).
 */
#include <errno.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include "base_limits.h"
#include "dp_internal.h"

struct dp_config *dp_active;
bool dp_quit;
struct rte_mempool *dp_pool;
struct rte_rcu_qsbr *dp_qsbr;

static struct dp_worker *workers;
static unsigned int nb_workers;
static struct dp_task_list tasks = TAILQ_HEAD_INITIALIZER(tasks);

int
dp_init(struct rte_mempool *pool, const unsigned int *worker_lcores, unsigned int count)
{
	size_t sz;
	unsigned int i;

	if (count == 0 || count > DP_WORKERS_MAX)
		return -EINVAL;
	workers = rte_zmalloc("dp_workers", sizeof(*workers) * count, RTE_CACHE_LINE_SIZE);
	if (workers == NULL)
		return -ENOMEM;
	sz = rte_rcu_qsbr_get_memsize(count);
	dp_qsbr = rte_zmalloc("dp_qsbr", sz, RTE_CACHE_LINE_SIZE);
	if (dp_qsbr == NULL || rte_rcu_qsbr_init(dp_qsbr, count) != 0) {
		rte_free(dp_qsbr);
		rte_free(workers);
		return -ENOMEM;
	}
	for (i = 0; i < count; i++) {
		workers[i].lcore = worker_lcores[i];
		workers[i].idx = i;
	}
	nb_workers = count;
	dp_pool = pool;
	return 0;
}

int
dp_start(void)
{
	unsigned int i;
	int rc;

	__atomic_store_n(&dp_quit, false, __ATOMIC_RELAXED);
	for (i = 0; i < nb_workers; i++) {
		rc = rte_eal_remote_launch(dp_worker_main, &workers[i], workers[i].lcore);
		if (rc != 0) {
			dp_stop();
			return rc;
		}
	}
	return 0;
}

void
dp_stop(void)
{
	unsigned int i;

	__atomic_store_n(&dp_quit, true, __ATOMIC_RELAXED);
	for (i = 0; i < nb_workers; i++)
		rte_eal_wait_lcore(workers[i].lcore);
}

static void
config_free(struct dp_config *cfg)
{
	unsigned int i;

	if (cfg == NULL)
		return;
	for (i = 0; i < DP_WORKERS_MAX; i++)
		rte_free(cfg->workers[i]);
	rte_free(cfg);
}

void
dp_fini(void)
{
	struct dp_task *t;

	dp_apply(NULL, 0);
	config_free(dp_active);
	dp_active = NULL;
	while ((t = TAILQ_FIRST(&tasks)) != NULL) {
		TAILQ_REMOVE(&tasks, t, next);
		rte_free(t);
	}
	rte_free(dp_qsbr);
	rte_free(workers);
	dp_qsbr = NULL;
	workers = NULL;
	nb_workers = 0;
}

static bool
endpoint_eq(const struct dp_endpoint *a, const struct dp_endpoint *b)
{
	return a->type == b->type && a->id == b->id && a->queue == b->queue;
}

static bool
task_matches(const struct dp_task *t, const struct dp_task_spec *s)
{
	return endpoint_eq(&t->rx, &s->rx) && endpoint_eq(&t->tx, &s->tx) &&
	       t->rx_stats == s->rx_stats && t->rx_stats_queue == s->rx_stats_queue &&
	       t->tx_stats == s->tx_stats && t->tx_stats_queue == s->tx_stats_queue &&
	       t->max_frame == s->max_frame && t->rx_iotlb_stat == s->rx_iotlb_stat &&
	       t->tx_iotlb_stat == s->tx_iotlb_stat && t->poll == s->poll &&
	       t->poll_arg == s->poll_arg;
}

static unsigned int
least_loaded_worker(void)
{
	unsigned int i, best = 0;

	for (i = 1; i < nb_workers; i++)
		if (workers[i].nb_tasks < workers[best].nb_tasks)
			best = i;
	return best;
}

/* @return the worker of a task that already sends to ethdev queue @p tx, else the least loaded */
static unsigned int
eth_tx_owner(const struct dp_endpoint *tx, struct dp_task_list *fresh, const struct dp_task *self)
{
	const struct dp_task *t;

	if (tx->type == DP_ENDPOINT_ETH) {
		TAILQ_FOREACH(t, &tasks, next)
		if (t->keep && endpoint_eq(&t->tx, tx))
			return t->worker;
		TAILQ_FOREACH(t, fresh, next)
		{
			if (t == self)
				break;
			if (endpoint_eq(&t->tx, tx))
				return t->worker;
		}
	}
	return least_loaded_worker();
}

static void
counters_add(struct dp_queue_counters *dst, const struct dp_queue_counters *src, bool rx, bool tx)
{
	if (rx) {
		dst->rx_packets += dp_ctr_get(&src->rx_packets);
		dst->rx_bytes += dp_ctr_get(&src->rx_bytes);
		dst->rx_drops += dp_ctr_get(&src->rx_drops);
		dst->rx_iotlb_wait_cycles += dp_ctr_get(&src->rx_iotlb_wait_cycles);
	}
	if (tx) {
		dst->tx_packets += dp_ctr_get(&src->tx_packets);
		dst->tx_bytes += dp_ctr_get(&src->tx_bytes);
		dst->tx_drops += dp_ctr_get(&src->tx_drops);
		dst->tx_iotlb_wait_cycles += dp_ctr_get(&src->tx_iotlb_wait_cycles);
	}
}

/* Fold a retired task's counters into its devices' totals: nothing writes them any more. */
static void
task_retire(struct dp_task *t)
{
	/* Packets still held for the destination will never be sent: drops. */
	if (t->nb_held != 0) {
		t->ctr.tx_drops += t->nb_held;
		rte_pktmbuf_free_bulk(t->held, t->nb_held);
		t->nb_held = 0;
	}
	if (t->rx_stats != NULL)
		counters_add(&t->rx_stats->retired[t->rx_stats_queue], &t->ctr, true, false);
	if (t->tx_stats != NULL)
		counters_add(&t->tx_stats->retired[t->tx_stats_queue], &t->ctr, false, true);
	rte_free(t);
}

static void
config_add(struct dp_config *cfg, struct dp_task *t)
{
	struct dp_worker_conf *wc = cfg->workers[t->worker];

	wc->tasks[wc->nb_tasks++] = t;
}

/* A configuration of the kept tasks and the fresh ones; workers[].nb_tasks must count them. */
static struct dp_config *
config_build(struct dp_task_list *fresh)
{
	struct dp_config *cfg = rte_zmalloc("dp_config", sizeof(*cfg), RTE_CACHE_LINE_SIZE);
	struct dp_worker_conf *wc;
	struct dp_task *t;
	unsigned int i;

	if (cfg == NULL)
		return NULL;
	for (i = 0; i < nb_workers; i++) {
		wc = rte_zmalloc("dp_worker_conf",
			sizeof(*wc) + sizeof(wc->tasks[0]) * workers[i].nb_tasks,
			RTE_CACHE_LINE_SIZE);
		if (wc == NULL) {
			config_free(cfg);
			return NULL;
		}
		cfg->workers[i] = wc;
	}
	TAILQ_FOREACH(t, &tasks, next)
	if (t->keep)
		config_add(cfg, t);
	TAILQ_FOREACH(t, fresh, next)
	config_add(cfg, t);
	return cfg;
}

static void
count_tasks(struct dp_task_list *fresh, bool kept_only)
{
	struct dp_task *t;
	unsigned int i;

	for (i = 0; i < nb_workers; i++)
		workers[i].nb_tasks = 0;
	TAILQ_FOREACH(t, &tasks, next)
	if (t->keep || !kept_only)
		workers[t->worker].nb_tasks++;
	if (fresh != NULL)
		TAILQ_FOREACH(t, fresh, next)
	workers[t->worker].nb_tasks++;
}

static void
free_list(struct dp_task_list *list)
{
	struct dp_task *t;

	while ((t = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, t, next);
		rte_free(t);
	}
}

int
dp_apply(const struct dp_task_spec *specs, unsigned int nb_specs)
{
	struct dp_task_list fresh = TAILQ_HEAD_INITIALIZER(fresh);
	struct dp_task *t, *tmp;
	struct dp_config *cfg, *old;
	unsigned int i;
	bool changed = false;

	TAILQ_FOREACH(t, &tasks, next)
	t->keep = false;
	for (i = 0; i < nb_specs; i++) {
		TAILQ_FOREACH(t, &tasks, next)
		if (!t->keep && task_matches(t, &specs[i]))
			break;
		if (t != NULL) {
			t->keep = true;
			continue;
		}
		t = rte_zmalloc("dp_task", sizeof(*t), RTE_CACHE_LINE_SIZE);
		if (t == NULL) {
			free_list(&fresh);
			return -ENOMEM;
		}
		t->rx = specs[i].rx;
		t->tx = specs[i].tx;
		t->max_frame = specs[i].max_frame;
		t->rx_iotlb_stat = specs[i].rx_iotlb_stat;
		t->poll = specs[i].poll;
		t->poll_arg = specs[i].poll_arg;
		/* An IOTLB miss is answered by the frontend's main loop: give it longer than a
		 * full ring, which the guest drains at its own pace. */
		t->hold_cycles =
			rte_get_tsc_hz() / 1000000 *
			(specs[i].tx_iotlb_stat >= 0 ? DP_HOLD_TRANSLATING_US : DP_HOLD_US);
		t->tx_iotlb_stat = specs[i].tx_iotlb_stat;
		t->rx_stats = specs[i].rx_stats;
		t->rx_stats_queue = specs[i].rx_stats_queue;
		t->tx_stats = specs[i].tx_stats;
		t->tx_stats_queue = specs[i].tx_stats_queue;
		TAILQ_INSERT_TAIL(&fresh, t, next);
		changed = true;
	}
	TAILQ_FOREACH(t, &tasks, next)
	changed |= !t->keep;
	if (!changed)
		return 0; /* the running plan already is this one */

	/* Kept tasks stay on their worker; each new one goes to the least loaded, except that
	 * tasks sending to one ethdev queue share a worker (ethdev tx queues are not
	 * thread-safe; vhost enqueue is). */
	count_tasks(NULL, true);
	TAILQ_FOREACH(t, &fresh, next)
	{
		t->worker = eth_tx_owner(&t->tx, &fresh, t);
		workers[t->worker].nb_tasks++;
	}
	cfg = config_build(&fresh);
	if (cfg == NULL) {
		free_list(&fresh);
		count_tasks(NULL, false);
		return -ENOMEM;
	}

	old = __atomic_exchange_n(&dp_active, cfg, __ATOMIC_RELEASE);
	/* Every worker passes a quiescent point after this: none holds the old config or a
	 * retired task any more. */
	rte_rcu_qsbr_synchronize(dp_qsbr, RTE_QSBR_THRID_INVALID);
	config_free(old);

	RTE_TAILQ_FOREACH_SAFE(t, &tasks, next, tmp)
	{
		if (t->keep)
			continue;
		TAILQ_REMOVE(&tasks, t, next);
		task_retire(t);
	}
	TAILQ_CONCAT(&tasks, &fresh, next);
	return 0;
}

struct dp_stats *
dp_stats_create(uint16_t nb_queues)
{
	struct dp_stats *s = rte_zmalloc("dp_stats", sizeof(*s), 0);

	if (s == NULL)
		goto nomem;
	s->nb_queues = nb_queues;
	s->retired = rte_zmalloc("dp_stats", sizeof(*s->retired) * nb_queues, 0);
	s->baseline = rte_zmalloc("dp_stats", sizeof(*s->baseline) * nb_queues, 0);
	if (s->retired == NULL || s->baseline == NULL)
		goto nomem;
	return s;
nomem:
	dp_stats_free(s);
	errno = ENOMEM;
	return NULL;
}

void
dp_stats_free(struct dp_stats *s)
{
	if (s == NULL)
		return;
	rte_free(s->retired);
	rte_free(s->baseline);
	rte_free(s);
}

static void
stats_total(const struct dp_stats *s, uint16_t q, struct dp_queue_counters *out)
{
	const struct dp_task *t;

	*out = s->retired[q];
	TAILQ_FOREACH(t, &tasks, next)
	{
		if (t->rx_stats == s && t->rx_stats_queue == q)
			counters_add(out, &t->ctr, true, false);
		if (t->tx_stats == s && t->tx_stats_queue == q)
			counters_add(out, &t->ctr, false, true);
	}
}

void
dp_stats_read(const struct dp_stats *s, uint16_t q, struct dp_queue_counters *out)
{
	const struct dp_queue_counters *b = &s->baseline[q];

	memset(out, 0, sizeof(*out));
	if (q >= s->nb_queues)
		return;
	stats_total(s, q, out);
	out->rx_packets -= b->rx_packets;
	out->rx_bytes -= b->rx_bytes;
	out->rx_drops -= b->rx_drops;
	out->tx_packets -= b->tx_packets;
	out->tx_bytes -= b->tx_bytes;
	out->tx_drops -= b->tx_drops;
	out->rx_iotlb_wait_cycles -= b->rx_iotlb_wait_cycles;
	out->tx_iotlb_wait_cycles -= b->tx_iotlb_wait_cycles;
}

void
dp_stats_reset(struct dp_stats *s)
{
	uint16_t q;

	for (q = 0; q < s->nb_queues; q++)
		stats_total(s, q, &s->baseline[q]);
}

void
dp_synchronize(void)
{
	rte_rcu_qsbr_synchronize(dp_qsbr, RTE_QSBR_THRID_INVALID);
}

unsigned int
dp_worker_count(void)
{
	return nb_workers;
}

int
dp_worker_get(unsigned int idx, struct dp_worker_info *info)
{
	const struct dp_worker *w;

	if (idx >= nb_workers)
		return -ENOENT;
	w = &workers[idx];
	info->lcore = w->lcore;
	info->tasks = w->nb_tasks;
	info->busy_cycles = dp_ctr_get(&w->busy_cycles);
	info->total_cycles = dp_ctr_get(&w->total_cycles);
	info->packets = dp_ctr_get(&w->packets);
	info->polls = dp_ctr_get(&w->polls);
	return 0;
}
