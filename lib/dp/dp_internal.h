/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_DP_INTERNAL_H
#define VHOSTD_DP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <rte_common.h>
#include <rte_tailq.h>

#include "base_limits.h"
#include "dp.h"

/* Workers the data plane can run: one per lcore at most. */
#define DP_WORKERS_MAX 64

struct dp_task {
	/* Read by the owning worker; never changed after the task is published. */
	struct dp_endpoint rx;
	struct dp_endpoint tx;
	uint32_t max_frame;
	int16_t rx_iotlb_stat;
	int16_t tx_iotlb_stat;
	dp_poll_fn poll;
	void *poll_arg;
	/* Written by the owning worker only; read by the control thread (relaxed loads). */
	struct dp_queue_counters ctr;
	uint64_t hold_cycles; /* how long a burst the destination refused is offered again */
	/* The owning worker's own state: packets held for the destination, IOTLB wait timing. */
	uint16_t nb_held;
	uint64_t hold_deadline;
	struct rte_mbuf *held[DP_BURST];
	uint32_t polls_since_sample;
	uint64_t sample_tsc;
	uint64_t rx_misses_seen, tx_misses_seen;

	/* Control thread only. */
	struct dp_stats *rx_stats;
	uint16_t rx_stats_queue;
	struct dp_stats *tx_stats;
	uint16_t tx_stats_queue;
	unsigned int worker;
	bool keep;
	TAILQ_ENTRY(dp_task) next;
} __rte_cache_aligned;

TAILQ_HEAD(dp_task_list, dp_task);

/* One worker's share of a configuration: the tasks it polls, in order. */
struct dp_worker_conf {
	unsigned int nb_tasks;
	struct dp_task *tasks[];
};

/* An immutable configuration generation, published with one atomic pointer store. */
struct dp_config {
	struct dp_worker_conf *workers[DP_WORKERS_MAX];
};

struct dp_worker {
	/* Set before launch, read by the worker. */
	unsigned int lcore;
	unsigned int idx; /* also its rte_rcu_qsbr thread id */
	/* Written by the worker only (relaxed stores); read by control. */
	uint64_t busy_cycles;
	uint64_t total_cycles;
	uint64_t packets;
	uint64_t polls;
	/* Control thread only. */
	unsigned int nb_tasks;
} __rte_cache_aligned;

struct dp_stats {
	uint16_t nb_queues;
	struct dp_queue_counters *retired;  /* folded in from retired tasks */
	struct dp_queue_counters *baseline; /* subtracted: what stats_reset saw */
};

/* The published configuration: stored by control, loaded by workers every poll. */
extern struct dp_config *dp_active;
extern bool dp_quit;
extern struct rte_mempool *dp_pool;
extern struct rte_rcu_qsbr *dp_qsbr;

/* Worker entry point, for rte_eal_remote_launch(). */
int dp_worker_main(void *arg);

/* Relaxed accessors for counters with a single writer. */
static inline void
dp_ctr_add(uint64_t *ctr, uint64_t n)
{
	__atomic_store_n(ctr, __atomic_load_n(ctr, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t
dp_ctr_get(const uint64_t *ctr)
{
	return __atomic_load_n(ctr, __ATOMIC_RELAXED);
}

#endif /* VHOSTD_DP_INTERNAL_H */
