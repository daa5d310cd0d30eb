/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Runs on worker lcores, and nothing else does. No locks, no syscalls of our own, no malloc, no
 * logging: counters instead. The only shared state read is the published configuration, and
 * rte_rcu_qsbr_quiescent() after every poll tells the control thread when an old one is free.
 */
#include <string.h>

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

/*
 * Translation waits. librte_vhost requests an IOTLB miss and returns a short burst; it tells
 * nobody but its per-vring iotlb_misses counter, and reading that takes the vring's lock and
 * copies every counter. So a translating task samples it every DP_IOTLB_SAMPLE_POLLS polls, and
 * a window in which it grew counts as cycles spent waiting for translation: an estimate at
 * the resolution of one window, at the cost of two counter reads per window.
 */
#define DP_IOTLB_SAMPLE_POLLS 256
#define DP_VRING_STATS_MAX    32

static uint64_t
vring_misses(uint16_t vid, uint16_t vring, int16_t idx)
{
	struct rte_vhost_stat st[DP_VRING_STATS_MAX];
	int n = rte_vhost_vring_stats_get(vid, vring, st, DP_VRING_STATS_MAX);

	return n > idx && n <= DP_VRING_STATS_MAX ? st[idx].value : 0;
}

static void
iotlb_window(struct dp_task *t, int16_t idx, const struct dp_endpoint *ep, uint64_t *seen,
	uint64_t *wait, uint64_t cycles)
{
	uint64_t m;

	if (idx < 0 || ep->type != DP_ENDPOINT_VHOST)
		return;
	m = vring_misses(ep->id, ep->queue, idx);
	if (m > *seen && t->sample_tsc != 0)
		dp_ctr_add(wait, cycles);
	*seen = m;
}

static void
iotlb_sample(struct dp_task *t)
{
	uint64_t now, cycles;

	if (++t->polls_since_sample < DP_IOTLB_SAMPLE_POLLS)
		return;
	t->polls_since_sample = 0;
	now = rte_rdtsc();
	cycles = now - t->sample_tsc;
	iotlb_window(t, t->rx_iotlb_stat, &t->rx, &t->rx_misses_seen, &t->ctr.rx_iotlb_wait_cycles,
		cycles);
	iotlb_window(t, t->tx_iotlb_stat, &t->tx, &t->tx_misses_seen, &t->ctr.tx_iotlb_wait_cycles,
		cycles);
	t->sample_tsc = now;
}

/*
 * Send @p n packets (@p bytes in all) to the task's destination. @return how many it took; for
 * a vhost destination those are freed here (librte_vhost copied them into guest buffers), an
 * ethdev owns them now. The rest are still ours.
 */
static inline uint16_t
tx_send(struct dp_task *t, struct rte_mbuf **pkts, uint16_t n, uint64_t bytes)
{
	uint16_t sent, i;

	if (t->tx.type == DP_ENDPOINT_VHOST)
		sent = rte_vhost_enqueue_burst(t->tx.id, t->tx.queue, pkts, n);
	else
		sent = rte_eth_tx_burst(t->tx.id, t->tx.queue, pkts, n);
	if (unlikely(sent < n))
		for (i = sent; i < n; i++)
			bytes -= pkts[i]->pkt_len;
	if (t->tx.type == DP_ENDPOINT_VHOST)
		rte_pktmbuf_free_bulk(pkts, sent);
	dp_ctr_add(&t->ctr.tx_packets, sent);
	dp_ctr_add(&t->ctr.tx_bytes, bytes);
	return sent;
}

static inline uint64_t
sum_bytes(struct rte_mbuf **pkts, uint16_t n)
{
	uint64_t bytes = 0;
	uint16_t i;

	for (i = 0; i < n; i++)
		bytes += pkts[i]->pkt_len;
	return bytes;
}

/*
 * A burst the destination did not take completely (its ring is full, or the enqueue hit an
 * IOTLB miss that the frontend will answer shortly) is held and offered again on the next
 * polls, up to t->hold_cycles, before it is dropped and counted. Meanwhile this task receives
 * nothing more (the source's ring fills: back-pressure instead of loss), and every other task
 * of this worker runs as usual.
 * @return true while packets are still held.
 */
static inline bool
flush_held(struct dp_task *t)
{
	uint16_t sent = tx_send(t, t->held, t->nb_held, sum_bytes(t->held, t->nb_held));

	if (sent == t->nb_held) {
		t->nb_held = 0;
		return false;
	}
	if (sent > 0)
		memmove(t->held, t->held + sent, (t->nb_held - sent) * sizeof(t->held[0]));
	t->nb_held -= sent;
	if (rte_rdtsc() < t->hold_deadline)
		return true;
	dp_ctr_add(&t->ctr.tx_drops, t->nb_held);
	rte_pktmbuf_free_bulk(t->held, t->nb_held);
	t->nb_held = 0;
	return false;
}

/* One burst through one task. @return packets received. */
static inline uint16_t
task_poll(struct dp_task *t)
{
	struct rte_mbuf *pkts[DP_BURST];
	uint64_t bytes = 0;
	uint16_t n, rx, sent;

	if (unlikely(t->rx_iotlb_stat >= 0 || t->tx_iotlb_stat >= 0))
		iotlb_sample(t);
	if (unlikely(t->nb_held != 0) && flush_held(t))
		return 0;
	rx = n = rx_burst(t, pkts);
	if (n == 0)
		return 0;
	bytes = sum_bytes(pkts, n);
	dp_ctr_add(&t->ctr.rx_packets, n);
	dp_ctr_add(&t->ctr.rx_bytes, bytes);
	if (unlikely(t->max_frame != 0))
		n = drop_oversize(t, pkts, n, &bytes);

	if (unlikely(t->tx.type == DP_ENDPOINT_NONE)) {
		rte_pktmbuf_free_bulk(pkts, n);
		dp_ctr_add(&t->ctr.rx_drops, n);
		return rx;
	}
	sent = tx_send(t, pkts, n, bytes);
	if (unlikely(sent < n)) {
		t->nb_held = n - sent;
		memcpy(t->held, pkts + sent, t->nb_held * sizeof(pkts[0]));
		t->hold_deadline = rte_rdtsc() + t->hold_cycles;
	}
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
			for (i = 0; i < wc->nb_tasks; i++) {
				struct dp_task *t = wc->tasks[i];

				if (t->rx.type == DP_ENDPOINT_POLL)
					moved += t->poll(t->poll_arg);
				else
					moved += task_poll(t);
			}
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
