/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Runs on worker lcores, and nothing else does. No locks, no syscalls of our own, no malloc, no
 * logging: counters instead. The only shared state read is the published configuration, and
 * rte_rcu_qsbr_quiescent() after every poll tells the control thread when an old one is free.
 */
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_vhost.h>

#include "base_limits.h"
#include "dp_internal.h"

static inline uint16_t
rx_burst(const struct dp_task *t, struct rte_mbuf **pkts)
{
	if (t->rx.type == DP_ENDPOINT_VHOST)
		return rte_vhost_dequeue_burst(t->rx.id, t->rx.queue, dp_pool, pkts, DP_BURST);
	return rte_eth_rx_burst(t->rx.id, t->rx.queue, pkts, DP_BURST);
}

/* Drop frames over the policy's limit, keeping the others in order. @return what is left. */
static uint16_t
drop_oversize(struct dp_task *t, struct rte_mbuf **pkts, uint16_t n, uint64_t *bytes)
{
	uint16_t i, kept = 0;

	for (i = 0; i < n; i++) {
		if (pkts[i]->pkt_len > t->max_frame) {
			*bytes -= pkts[i]->pkt_len;
			rte_pktmbuf_free(pkts[i]);
			continue;
		}
		pkts[kept++] = pkts[i];
	}
	dp_ctr_add(&t->ctr.rx_drops, n - kept);
	return kept;
}

/* One burst through one task. @return packets received. */
static inline uint16_t
task_poll(struct dp_task *t)
{
	struct rte_mbuf *pkts[DP_BURST];
	uint64_t bytes = 0, sent_bytes;
	uint16_t n, rx, sent, i;

	rx = n = rx_burst(t, pkts);
	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		bytes += pkts[i]->pkt_len;
	dp_ctr_add(&t->ctr.rx_packets, n);
	dp_ctr_add(&t->ctr.rx_bytes, bytes);
	if (unlikely(t->max_frame != 0))
		n = drop_oversize(t, pkts, n, &bytes);

	switch (t->tx.type) {
	case DP_ENDPOINT_VHOST:
		/* librte_vhost copies into guest buffers: our mbufs are ours again after this. */
		sent = rte_vhost_enqueue_burst(t->tx.id, t->tx.queue, pkts, n);
		break;
	case DP_ENDPOINT_ETH:
		sent = rte_eth_tx_burst(t->tx.id, t->tx.queue, pkts, n);
		break;
	default:
		rte_pktmbuf_free_bulk(pkts, n);
		dp_ctr_add(&t->ctr.rx_drops, n);
		return rx;
	}

	sent_bytes = bytes;
	if (unlikely(sent < n))
		for (i = sent; i < n; i++)
			sent_bytes -= pkts[i]->pkt_len;
	dp_ctr_add(&t->ctr.tx_packets, sent);
	dp_ctr_add(&t->ctr.tx_bytes, sent_bytes);
	if (unlikely(sent < n))
		dp_ctr_add(&t->ctr.tx_drops, n - sent);

	if (t->tx.type == DP_ENDPOINT_VHOST)
		rte_pktmbuf_free_bulk(pkts, n);
	else if (sent < n)
		rte_pktmbuf_free_bulk(pkts + sent, n - sent);
	return rx;
}

int
dp_worker_main(void *arg)
{
	struct dp_worker *w = arg;
	const struct dp_worker_conf *wc;
	const struct dp_config *cfg;
	uint64_t start, prev, now, moved;
	unsigned int i;

	rte_rcu_qsbr_thread_register(dp_qsbr, w->idx);
	rte_rcu_qsbr_thread_online(dp_qsbr, w->idx);
	start = prev = rte_rdtsc();

	while (!__atomic_load_n(&dp_quit, __ATOMIC_RELAXED)) {
		cfg = __atomic_load_n(&dp_active, __ATOMIC_ACQUIRE);
		moved = 0;
		if (cfg != NULL && (wc = cfg->workers[w->idx]) != NULL) {
			for (i = 0; i < wc->nb_tasks; i++)
				moved += task_poll(wc->tasks[i]);
		}
		/* From here on this worker holds no pointer into cfg. */
		rte_rcu_qsbr_quiescent(dp_qsbr, w->idx);

		now = rte_rdtsc();
		if (moved != 0) {
			dp_ctr_add(&w->busy_cycles, now - prev);
			dp_ctr_add(&w->packets, moved);
		}
		dp_ctr_add(&w->polls, 1);
		__atomic_store_n(&w->total_cycles, now - start, __ATOMIC_RELAXED);
		prev = now;
	}

	rte_rcu_qsbr_thread_offline(dp_qsbr, w->idx);
	rte_rcu_qsbr_thread_unregister(dp_qsbr, w->idx);
	return 0;
}
