/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --kind net: queue pair = RX vring (even index) + TX vring (odd index).
 * One data thread busy-polls every queue pair: TX fills the avail ring with test
 * frames and reclaims the used ring; RX verifies every byte and reposts the buffer.
 * No syscalls on that path except kicks the backend asks for (VRING_USED_F_NO_NOTIFY
 * clear) and the first one.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "run.h"

#define NET_RX_FRAME_MAX  FE_MAX_PKT /* a receiver takes any frame up to 9000 bytes */
#define NET_RX_FRAME_IDLE 1518	     /* RX ring of a process that does not receive */

static uint32_t
align64(uint32_t v)
{
	return (v + 63u) & ~63u;
}

static uint64_t
net_features(const struct fe_opts *o)
{
	return o->queues > 1 ? BIT64(VIRTIO_NET_F_MQ) : 0;
}

static unsigned int
net_num_vrings(const struct fe_opts *o)
{
	return 2 * o->queues;
}

static int
net_init(struct fe_run *r)
{
	const struct fe_opts *o = r->o;
	struct net_ctx *n = calloc(1, sizeof(*n));
	uint32_t max_pkt = 0, tx_buf, rx_buf;
	uint8_t rx_perm = o->rx_map_readonly ? VU_ACCESS_RO : VU_ACCESS_RW;
	int rc = 0;

	if (n == NULL)
		return -ENOMEM;
	r->kpriv = n;
	n->r = r;
	n->o = o;
	n->nq = o->queues;
	n->gen_tx = r->role_tx;
	n->do_rx = r->role_rx;
	for (unsigned int i = 0; i < o->n_pkt_sizes; i++)
		if (o->pkt_sizes[i] > max_pkt)
			max_pkt = o->pkt_sizes[i];
	rx_buf = align64(r->hdr_len + (n->do_rx ? NET_RX_FRAME_MAX : NET_RX_FRAME_IDLE));
	tx_buf = o->echo ? rx_buf : align64(r->hdr_len + max_pkt);
	/* All rings first: they form one RW area, then TX (device reads), then RX buffers. */
	for (unsigned int i = 0; i < n->nq && rc == 0; i++) {
		struct net_queue *q = &n->q[i];

		q->qp = i;
		rc = virtq_init_rings(&q->rx, 2 * i, o->ring_size, &r->gm);
		if (rc == 0)
			rc = virtq_init_rings(&q->tx, 2 * i + 1, o->ring_size, &r->gm);
		r->vq[2 * i] = &q->rx;
		r->vq[2 * i + 1] = &q->tx;
	}
	for (unsigned int i = 0; i < n->nq && rc == 0; i++)
		rc = virtq_init_bufs(&n->q[i].tx, &r->gm, &r->io, tx_buf, VU_ACCESS_RO, false);
	for (unsigned int i = 0; i < n->nq && rc == 0; i++)
		rc = virtq_init_bufs(&n->q[i].rx, &r->gm, &r->io, rx_buf, rx_perm, true);
	r->nvrings = 2 * n->nq;
	if (rc < 0)
		return rc;
	for (unsigned int i = 0; i < n->nq; i++) {
		struct net_queue *q = &n->q[i];

		q->tx_quota = UINT64_MAX;
		if (o->count > 0)
			q->tx_quota =
				n->gen_tx ? r->tx_count / n->nq + (i < r->tx_count % n->nq ? 1 : 0)
					  : 0;
		q->rate_pps = r->rate_pps / n->nq + (i < r->rate_pps % n->nq ? 1 : 0);
		q->st.lat_min_ns = UINT64_MAX;
	}
	return 0;
}

/* Takes back what the backend consumed from a TX ring. */
static unsigned int
tx_reclaim(struct net_queue *q)
{
	struct virtq *vq = &q->tx;
	uint16_t used = virtq_used_idx(vq);
	unsigned int pkts = 0;
	uint64_t bytes = 0;

	while (vq->last_used != used) {
		uint16_t id;
		uint32_t len;

		if (!virtq_take_used(vq, &id, &len))
			continue;
		vq->free_ids[vq->nfree++] = id;
		pkts++;
		bytes += vq->len[id];
	}
	if (pkts > 0) {
		FE_STAT_ADD(q->st.tx_packets, pkts);
		FE_STAT_ADD(q->st.tx_bytes, bytes);
	}
	return pkts;
}

static unsigned int
tx_fill(struct net_ctx *n, struct net_queue *q, uint64_t now)
{
	const struct fe_opts *o = n->o;
	struct virtq *vq = &q->tx;
	unsigned int hl = n->r->hdr_len;
	uint64_t want = o->burst;

	if (q->tx_quota != UINT64_MAX && q->tx_quota - q->tx_seq < want)
		want = q->tx_quota - q->tx_seq;
	if (q->rate_pps != 0) {
		double target = (double)(now - n->r->sh->t_start_ns) * (double)q->rate_pps / 1e9;
		uint64_t allowed = target > (double)q->tx_seq ? (uint64_t)target - q->tx_seq : 0;

		if (allowed < want)
			want = allowed;
	}
	if (vq->nfree < want)
		want = vq->nfree;
	for (uint64_t k = 0; k < want; k++) {
		uint16_t id = vq->free_ids[--vq->nfree];
		uint32_t len = o->pkt_sizes[q->size_i];
		uint8_t *b = vq->buf[id];

		if (++q->size_i == o->n_pkt_sizes)
			q->size_i = 0;
		if (hl == 12)
			memset(b, 0, 12); /* constant size: inlined stores, no call */
		else
			memset(b, 0, hl);
		net_frame_build(b + hl, len, o->dst_mac, o->src_mac, o->stream_id,
			net_wire_queue(n->r->dev, q->qp), q->tx_seq++, now);
		vq->desc[id].len = hl + len;
		vq->len[id] = len;
		virtq_push(vq, id);
	}
	if (want > 0) {
		virtq_publish(vq);
		FE_STAT_ADD(q->st.tx_submitted, want);
	}
	return (unsigned int)want;
}

/* --echo: sends a received frame back with the MACs swapped. */
static bool
echo_one(struct net_ctx *n, struct net_queue *q, const uint8_t *f, uint32_t len)
{
	struct virtq *vq = &q->tx;
	unsigned int hl = n->r->hdr_len;
	uint16_t id;
	uint8_t *b;

	if (vq->nfree == 0 || hl + len > vq->buf_size || len < 12) {
		FE_STAT_ADD(q->st.echo_drops, 1);
		return false;
	}
	id = vq->free_ids[--vq->nfree];
	b = vq->buf[id];
	memset(b, 0, hl);
	memcpy(b + hl, f + 6, 6);
	memcpy(b + hl + 6, f, 6);
	memcpy(b + hl + 12, f + 12, len - 12);
	vq->desc[id].len = hl + len;
	vq->len[id] = len;
	virtq_push(vq, id);
	return true;
}

static void
account_latency(struct net_queue *q, const struct net_fhdr *h, uint64_t now)
{
	uint64_t lat;

	if (h->ts_ns == 0 || now < h->ts_ns)
		return;
	lat = now - h->ts_ns;
	q->st.lat_n++;
	q->st.lat_sum_ns += lat;
	if (lat < q->st.lat_min_ns)
		q->st.lat_min_ns = lat;
	if (lat > q->st.lat_max_ns)
		q->st.lat_max_ns = lat;
}

static unsigned int
rx_poll(struct net_ctx *n, struct net_queue *q, uint64_t now, uint64_t *ours)
{
	const struct fe_opts *o = n->o;
	struct virtq *vq = &q->rx;
	unsigned int hl = n->r->hdr_len;
	uint16_t cnt = (uint16_t)(virtq_used_idx(vq) - vq->last_used);
	uint64_t ok = 0, bad = 0, foreign = 0, bytes = 0, echoed = 0;

	if (cnt == 0)
		return 0;
	for (uint16_t k = 0; k < cnt; k++) {
		struct net_fhdr h;
		uint16_t id;
		uint32_t len, flen;
		const uint8_t *f;

		if (!virtq_take_used(vq, &id, &len))
			continue;
		if (len < hl || len > vq->buf_size) {
			n->bad_len++;
			bad++;
			virtq_push(vq, id);
			continue;
		}
		f = vq->buf[id] + hl;
		flen = len - hl;
		bytes += flen;
		switch (net_frame_verify(f, flen, &h)) {
		case NET_OK:
			ok++;
			net_streams_record(&n->streams, &h);
			if (h.stream == o->stream_id)
				account_latency(q, &h, now);
			break;
		case NET_BAD:
			bad++;
			break;
		case NET_FOREIGN:
			foreign++;
			break;
		}
		if (o->echo && echo_one(n, q, f, flen))
			echoed++;
		virtq_push(vq, id);
	}
	virtq_publish(vq);
	if (echoed > 0) {
		virtq_publish(&q->tx);
		FE_STAT_ADD(q->st.tx_submitted, echoed);
	}
	FE_STAT_ADD(q->st.rx_packets, ok + bad + foreign);
	FE_STAT_ADD(q->st.rx_bytes, bytes);
	FE_STAT_ADD(q->st.rx_ok, ok);
	FE_STAT_ADD(q->st.rx_bad, bad);
	FE_STAT_ADD(q->st.rx_foreign, foreign);
	*ours += ok + bad;
	return cnt;
}

/* The devices the data thread serves (one process, one data thread). */
static struct net_group {
	struct net_ctx *dev[FE_MAX_DEVS];
	unsigned int n;
	struct fe_shared *sh;
	pthread_t thread;
	bool running;
	uint64_t polls;	     /* data thread passes over every queue; read after the join */
	uint64_t idle_polls; /* passes that found nothing to do: the generator's headroom */
} group;

double
net_idle_ratio(void)
{
	return group.polls ? (double)group.idle_polls / (double)group.polls : 0;
}

static bool
tx_all_back(void)
{
	for (unsigned int d = 0; d < group.n; d++) {
		const struct net_ctx *n = group.dev[d];

		for (unsigned int i = 0; n->gen_tx && i < n->nq; i++)
			if (n->q[i].tx.nfree != n->q[i].tx.size)
				return false;
	}
	return true;
}

static bool
tx_all_sent(void)
{
	for (unsigned int d = 0; d < group.n; d++) {
		const struct net_ctx *n = group.dev[d];

		for (unsigned int i = 0; n->gen_tx && i < n->nq; i++)
			if (n->q[i].tx_seq < n->q[i].tx_quota)
				return false;
	}
	return true;
}

/* One pass over one device's queue pairs; returns the work done. */
static unsigned int
poll_device(struct net_ctx *n, uint64_t now, uint64_t *rx_ours)
{
	unsigned int work = 0;

	for (unsigned int i = 0; i < n->nq; i++) {
		struct net_queue *q = &n->q[i];

		if (n->gen_tx || n->o->echo)
			work += tx_reclaim(q);
		if (n->do_rx)
			work += rx_poll(n, q, now, rx_ours);
		if (n->gen_tx)
			work += tx_fill(n, q, now);
	}
	return work;
}

static void *
net_thread(void *arg)
{
	struct fe_shared *sh = arg;
	const struct fe_opts *o = sh->o;
	uint64_t last_progress = sh->t_start_ns, tx_done_at = 0, rx_ours = 0;
	uint64_t drain_ns = o->drain_ms * NS_PER_MS, idle_ns = o->idle_timeout_ms * NS_PER_MS;
	bool gen_tx = false, do_rx = false;

	for (unsigned int d = 0; d < group.n; d++) {
		gen_tx |= group.dev[d]->gen_tx;
		do_rx |= group.dev[d]->do_rx;
	}
	while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
		uint64_t now = fe_now_ns();
		unsigned int work = 0;

		for (unsigned int d = 0; d < group.n; d++)
			work += poll_device(group.dev[d], now, &rx_ours);
		group.polls++;
		if (work > 0) {
			last_progress = now;
		} else {
			group.idle_polls++;
			if (!gen_tx && !do_rx)
				usleep(1000); /* no traffic role: only hold the device */
			else if (o->idle_sleep_us > 0)
				usleep(o->idle_sleep_us); /* leave the core to others */
			else if (!o->no_yield)
				sched_yield(); /* nothing to do: let a peer on this core run */
		}
		if (o->count > 0) {
			bool sent = !gen_tx || tx_all_sent();
			bool drained;

			if (sent && tx_done_at == 0)
				tx_done_at = now;
			drained = gen_tx && tx_done_at != 0 && now - tx_done_at > drain_ns;
			if ((!gen_tx || (sent && tx_all_back()) || drained) &&
				(!do_rx || rx_ours >= o->count || drained)) {
				fe_run_done(sh, FE_STOP_COUNT);
				break;
			}
		}
		if (idle_ns != 0 && now - last_progress > idle_ns) {
			fe_run_done(sh, FE_STOP_IDLE);
			break;
		}
	}
	return NULL;
}

static int
net_start(struct fe_run **runs, unsigned int nruns)
{
	struct fe_shared *sh = runs[0]->sh;
	sigset_t block, old;
	int rc;

	group.n = nruns;
	group.sh = sh;
	for (unsigned int d = 0; d < nruns; d++) {
		struct net_ctx *n = runs[d]->kpriv;

		group.dev[d] = n;
		/* RX: every buffer goes to the device; the first publish kicks once. */
		for (unsigned int i = 0; i < n->nq; i++) {
			struct virtq *vq = &n->q[i].rx;

			while (vq->nfree > 0)
				virtq_push(vq, vq->free_ids[--vq->nfree]);
			virtq_publish(vq);
		}
	}
	/* Signals go to the control thread only. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	sh->t_start_ns = fe_now_ns();
	rc = pthread_create(&group.thread, NULL, net_thread, sh);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -rc;
	group.running = true;
	sh->started = true;
	return 0;
}

static void
net_stop(struct fe_run **runs, unsigned int nruns)
{
	(void)runs;
	(void)nruns;
	if (!group.running)
		return;
	atomic_store(&group.sh->stop, true);
	pthread_join(group.thread, NULL);
	group.running = false;
	group.sh->t_stop_ns = fe_now_ns();
}

static void
net_destroy(struct fe_run *r)
{
	struct net_ctx *n = r->kpriv;

	if (n == NULL)
		return;
	for (unsigned int i = 0; i < n->nq; i++) {
		virtq_destroy(&n->q[i].rx);
		virtq_destroy(&n->q[i].tx);
	}
	free(n);
	r->kpriv = NULL;
}

/* --duration-s bounds the traffic; without a traffic role it is the hold time. */
static bool
net_control_timed(const struct fe_opts *o)
{
	return o->duration_s > 0 || !(o->tx || o->rx || o->echo);
}

const struct fe_kind_ops fe_net_ops = {
	.name = "net",
	.mq_bit = VIRTIO_NET_F_MQ,
	.control_timed = net_control_timed,
	.features = net_features,
	.num_vrings = net_num_vrings,
	.init = net_init,
	.start = net_start,
	.stop = net_stop,
	.totals = net_totals,
	.summary = net_summary,
	.dev_summary = net_dev_summary,
	.destroy = net_destroy,
};
