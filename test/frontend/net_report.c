/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --kind net: progress totals and summary fields. Counters are read with relaxed
 * loads while the data thread runs (progress) and after it is joined (summary).
 */
#include <string.h>

#include "net.h"
#include "run.h"

static void
add_stats(const struct net_ctx *n, struct net_qstats *t)
{
	for (unsigned int i = 0; n != NULL && i < n->nq; i++) {
		const struct net_qstats *s = &n->q[i].st;

		t->tx_packets += FE_STAT_GET(s->tx_packets);
		t->tx_bytes += FE_STAT_GET(s->tx_bytes);
		t->tx_submitted += FE_STAT_GET(s->tx_submitted);
		t->rx_packets += FE_STAT_GET(s->rx_packets);
		t->rx_bytes += FE_STAT_GET(s->rx_bytes);
		t->rx_ok += FE_STAT_GET(s->rx_ok);
		t->rx_bad += FE_STAT_GET(s->rx_bad);
		t->rx_foreign += FE_STAT_GET(s->rx_foreign);
		t->echo_drops += FE_STAT_GET(s->echo_drops);
		t->lat_n += s->lat_n;
		t->lat_sum_ns += s->lat_sum_ns;
		if (s->lat_min_ns < t->lat_min_ns)
			t->lat_min_ns = s->lat_min_ns;
		if (s->lat_max_ns > t->lat_max_ns)
			t->lat_max_ns = s->lat_max_ns;
	}
}

static void
zero_stats(struct net_qstats *t)
{
	memset(t, 0, sizeof(*t));
	t->lat_min_ns = UINT64_MAX;
}

void
net_totals(struct fe_run *r, uint64_t *tx, uint64_t *rx)
{
	struct net_qstats t;

	zero_stats(&t);
	add_stats(r->kpriv, &t);
	*tx = t.tx_packets;
	*rx = t.rx_packets;
}

/* Per stream sequence tracking, and the gap/reorder totals. */
static void
summary_streams(struct fe_run **runs, unsigned int nruns, struct fe_json *j, uint64_t *gaps,
	uint64_t *reorders, uint64_t *overflow)
{
	*gaps = *reorders = *overflow = 0;
	fe_json_open(j, "streams", '[');
	for (unsigned int d = 0; d < nruns; d++) {
		const struct net_ctx *n = runs[d]->kpriv;

		for (unsigned int i = 0; n != NULL && i < NET_MAX_STREAMS; i++) {
			const struct net_stream *s = &n->streams.s[i];

			if (!s->used)
				continue;
			*gaps += s->gaps;
			*reorders += s->reorders;
			fe_json_open(j, NULL, '{');
			fe_json_u64(j, "device", d);
			fe_json_u64(j, "stream", s->stream);
			fe_json_u64(j, "queue", s->queue);
			fe_json_u64(j, "rx", s->rx);
			fe_json_u64(j, "next_seq", s->next_seq);
			fe_json_u64(j, "gaps", s->gaps);
			fe_json_u64(j, "reorders", s->reorders);
			fe_json_close(j, '}');
		}
		if (n != NULL)
			*overflow += n->streams.overflow;
	}
	fe_json_close(j, ']');
}

static double
rate(uint64_t v, double secs, double unit)
{
	return secs > 0 ? (double)v / secs / unit : 0;
}

void
net_summary(struct fe_run **runs, unsigned int nruns, struct fe_json *j, double secs)
{
	uint64_t gaps, reorders, overflow, kicks = 0, bad_used = 0, bad_len = 0;
	struct net_qstats t;

	zero_stats(&t);
	for (unsigned int d = 0; d < nruns; d++) {
		const struct net_ctx *n = runs[d]->kpriv;

		add_stats(n, &t);
		for (unsigned int i = 0; n != NULL && i < n->nq; i++) {
			kicks += n->q[i].rx.kicks + n->q[i].tx.kicks;
			bad_used += n->q[i].rx.bad_used + n->q[i].tx.bad_used;
		}
		if (n != NULL)
			bad_len += n->bad_len;
	}
	fe_json_u64(j, "tx_packets", t.tx_packets);
	fe_json_u64(j, "tx_bytes", t.tx_bytes);
	fe_json_u64(j, "tx_submitted", t.tx_submitted);
	fe_json_u64(j, "rx_packets", t.rx_packets);
	fe_json_u64(j, "rx_bytes", t.rx_bytes);
	fe_json_u64(j, "rx_ok", t.rx_ok);
	fe_json_u64(j, "rx_bad", t.rx_bad);
	fe_json_u64(j, "rx_foreign", t.rx_foreign);
	fe_json_u64(j, "echo_drops", t.echo_drops);
	fe_json_u64(j, "rx_bad_len", bad_len);
	fe_json_u64(j, "bad_used_ids", bad_used);
	fe_json_u64(j, "kicks", kicks);
	fe_json_dbl(j, "idle_poll_ratio", net_idle_ratio());
	fe_json_dbl(j, "tx_mpps", rate(t.tx_packets, secs, 1e6));
	fe_json_dbl(j, "rx_mpps", rate(t.rx_packets, secs, 1e6));
	fe_json_dbl(j, "tx_gbps", rate(t.tx_bytes * 8, secs, 1e9));
	fe_json_dbl(j, "rx_gbps", rate(t.rx_bytes * 8, secs, 1e9));
	if (t.lat_n > 0) {
		fe_json_open(j, "latency_us", '{');
		fe_json_u64(j, "n", t.lat_n);
		fe_json_dbl(j, "min", (double)t.lat_min_ns / 1e3);
		fe_json_dbl(j, "avg", (double)t.lat_sum_ns / (double)t.lat_n / 1e3);
		fe_json_dbl(j, "max", (double)t.lat_max_ns / 1e3);
		fe_json_close(j, '}');
	}
	summary_streams(runs, nruns, j, &gaps, &reorders, &overflow);
	fe_json_u64(j, "seq_gaps", gaps);
	fe_json_u64(j, "seq_reorders", reorders);
	fe_json_u64(j, "streams_overflow", overflow);
	fe_json_open(j, "queue_stats", '[');
	for (unsigned int d = 0; d < nruns; d++) {
		const struct net_ctx *n = runs[d]->kpriv;

		for (unsigned int i = 0; n != NULL && i < n->nq; i++) {
			const struct net_qstats *s = &n->q[i].st;

			fe_json_open(j, NULL, '{');
			fe_json_u64(j, "device", d);
			fe_json_u64(j, "qp", i);
			fe_json_u64(j, "tx_packets", s->tx_packets);
			fe_json_u64(j, "rx_packets", s->rx_packets);
			fe_json_u64(j, "rx_ok", s->rx_ok);
			fe_json_u64(j, "rx_bad", s->rx_bad);
			fe_json_close(j, '}');
		}
	}
	fe_json_close(j, ']');
}

void
net_dev_summary(struct fe_run *r, struct fe_json *j)
{
	struct net_qstats t;

	zero_stats(&t);
	add_stats(r->kpriv, &t);
	fe_json_u64(j, "tx_packets", t.tx_packets);
	fe_json_u64(j, "rx_packets", t.rx_packets);
	fe_json_u64(j, "rx_ok", t.rx_ok);
	fe_json_u64(j, "rx_bad", t.rx_bad);
	fe_json_u64(j, "rx_foreign", t.rx_foreign);
}
