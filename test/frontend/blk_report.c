/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --kind blk: latency histogram, progress events, summary fields, verdict.
 * Counters are read with relaxed loads while the data thread runs (progress) and
 * after it is joined (summary).
 */
#include <string.h>

#include "blk.h"
#include "run.h"

static unsigned int
bucket(uint64_t v)
{
	unsigned int e;

	if (v < (1u << BLK_HIST_SUB_BITS))
		return (unsigned int)v;
	e = 63u - (unsigned int)__builtin_clzll(v);
	return ((e - BLK_HIST_SUB_BITS + 1) << BLK_HIST_SUB_BITS) |
	       (unsigned int)((v >> (e - BLK_HIST_SUB_BITS)) & ((1u << BLK_HIST_SUB_BITS) - 1));
}

/* Middle of bucket i (its values are within +-1.6 % of it). */
static double
bucket_mid(unsigned int i)
{
	unsigned int e, sub;
	uint64_t lo, width;

	if (i < (1u << BLK_HIST_SUB_BITS))
		return i;
	e = (i >> BLK_HIST_SUB_BITS) + BLK_HIST_SUB_BITS - 1;
	sub = i & ((1u << BLK_HIST_SUB_BITS) - 1);
	lo = (uint64_t)((1u << BLK_HIST_SUB_BITS) + sub) << (e - BLK_HIST_SUB_BITS);
	width = 1ULL << (e - BLK_HIST_SUB_BITS);
	return (double)lo + (double)(width - 1) / 2;
}

void
blk_hist_add(struct blk_hist *h, uint64_t ns)
{
	h->n++;
	h->sum_ns += ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
	h->b[bucket(ns)]++;
}

/* Value at quantile p (0..1) of the merged histogram, in microseconds. */
static double
quantile(const struct blk_hist *h, double p)
{
	uint64_t rank, seen = 0;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)(p * (double)h->n);
	if (rank >= h->n)
		rank = h->n - 1;
	for (unsigned int i = 0; i < BLK_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen > rank) {
			double v = bucket_mid(i);

			return (v > (double)h->max_ns ? (double)h->max_ns : v) / 1e3;
		}
	}
	return (double)h->max_ns / 1e3;
}

struct blk_totals {
	struct blk_qstats st;
	uint64_t kicks;
};

static void
add_totals(const struct blk_ctx *b, struct blk_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned int i = 0; b != NULL && i < b->nq; i++) {
		const struct blk_qstats *s = &b->q[i].st;

		t->st.submitted += FE_STAT_GET(s->submitted);
		t->st.completed += FE_STAT_GET(s->completed);
		t->st.reads += FE_STAT_GET(s->reads);
		t->st.writes += FE_STAT_GET(s->writes);
		t->st.flushes += FE_STAT_GET(s->flushes);
		t->st.bytes_read += FE_STAT_GET(s->bytes_read);
		t->st.bytes_written += FE_STAT_GET(s->bytes_written);
		t->st.errors += FE_STAT_GET(s->errors);
		t->st.verify_errors += FE_STAT_GET(s->verify_errors);
		t->st.reads_verified += FE_STAT_GET(s->reads_verified);
		t->st.resubmitted += FE_STAT_GET(s->resubmitted);
		t->st.bad_used += FE_STAT_GET(s->bad_used);
		t->kicks += b->q[i].vq.kicks;
	}
}

void
blk_totals(struct fe_run *r, uint64_t *writes, uint64_t *reads)
{
	struct blk_totals t;

	add_totals(r->kpriv, &t);
	*writes = t.st.writes;
	*reads = t.st.reads;
}

void
blk_progress(struct fe_run **runs, unsigned int n, struct fe_json *j, double dt)
{
	static uint64_t last_done, last_reads, last_writes;
	const struct blk_ctx *b = runs[0]->kpriv;
	struct blk_totals t;

	(void)n;
	add_totals(b, &t);
	fe_json_dbl(j, "iops", dt > 0 ? (double)(t.st.completed - last_done) / dt : 0);
	fe_json_dbl(j, "read_iops", dt > 0 ? (double)(t.st.reads - last_reads) / dt : 0);
	fe_json_dbl(j, "write_iops", dt > 0 ? (double)(t.st.writes - last_writes) / dt : 0);
	fe_json_u64(j, "completed", t.st.completed);
	fe_json_u64(j, "reads", t.st.reads);
	fe_json_u64(j, "writes", t.st.writes);
	fe_json_u64(j, "errors", t.st.errors);
	fe_json_u64(j, "verify_errors", t.st.verify_errors);
	fe_json_u64(j, "outstanding", t.st.submitted - t.st.completed);
	fe_json_bool(j, "connected", b != NULL && atomic_load(&b->connected));
	fe_json_u64(j, "reconnects", runs[0]->reconnects);
	fe_json_u64(j, "resubmitted_completions", t.st.resubmitted);
	last_done = t.st.completed;
	last_reads = t.st.reads;
	last_writes = t.st.writes;
}

static void
config_fields(const struct blk_ctx *b, struct fe_json *j)
{
	const struct virtio_blk_config *c = &b->cfg;

	if (!b->have_config) {
		fe_json_null(j, "config");
		return;
	}
	fe_json_open(j, "config", '{');
	fe_json_u64(j, "capacity", c->capacity);
	fe_json_u64(j, "size_max", c->size_max);
	fe_json_u64(j, "seg_max", c->seg_max);
	fe_json_u64(j, "cylinders", c->cylinders);
	fe_json_u64(j, "heads", c->heads);
	fe_json_u64(j, "sectors", c->sectors);
	fe_json_u64(j, "blk_size", c->blk_size);
	fe_json_u64(j, "physical_block_exp", c->physical_block_exp);
	fe_json_u64(j, "alignment_offset", c->alignment_offset);
	fe_json_u64(j, "min_io_size", c->min_io_size);
	fe_json_u64(j, "opt_io_size", c->opt_io_size);
	fe_json_u64(j, "wce", c->wce);
	fe_json_u64(j, "num_queues", c->num_queues);
	fe_json_u64(j, "max_discard_sectors", c->max_discard_sectors);
	fe_json_u64(j, "max_discard_seg", c->max_discard_seg);
	fe_json_u64(j, "discard_sector_alignment", c->discard_sector_alignment);
	fe_json_u64(j, "max_write_zeroes_sectors", c->max_write_zeroes_sectors);
	fe_json_u64(j, "max_write_zeroes_seg", c->max_write_zeroes_seg);
	fe_json_u64(j, "write_zeroes_may_unmap", c->write_zeroes_may_unmap);
	fe_json_close(j, '}');
}

static double
per_s(uint64_t v, double secs)
{
	return secs > 0 ? (double)v / secs : 0;
}

static void
load_fields(const struct blk_ctx *b, const struct blk_totals *t, struct fe_json *j)
{
	const struct blk_load *ld = &b->ld;
	double secs = (double)(ld->t_end - ld->t_start) / 1e9;
	struct blk_hist h;

	memset(&h, 0, sizeof(h));
	for (unsigned int i = 0; i < b->nq; i++) {
		const struct blk_hist *q = &b->q[i].hist;

		h.n += q->n;
		h.sum_ns += q->sum_ns;
		if (q->max_ns > h.max_ns)
			h.max_ns = q->max_ns;
		for (unsigned int k = 0; k < BLK_HIST_BUCKETS; k++)
			h.b[k] += q->b[k];
	}
	fe_json_bool(j, "load", b->o->blk_load);
	fe_json_str(j, "pattern", b->o->seq ? "seq" : "random");
	fe_json_u64(j, "qd", b->o->qd);
	fe_json_u64(j, "bs", b->o->bs);
	fe_json_u64(j, "rw_mix", b->o->rw_mix);
	fe_json_u64(j, "flush_every", b->o->flush_every);
	fe_json_u64(j, "region_bytes", ld->nblocks * ld->bs);
	fe_json_dbl(j, "load_s", secs);
	fe_json_dbl(j, "iops", per_s(ld->completed, secs));
	fe_json_dbl(j, "read_iops", per_s(t->st.reads, secs));
	fe_json_dbl(j, "write_iops", per_s(t->st.writes, secs));
	fe_json_dbl(j, "mbps", per_s(t->st.bytes_read + t->st.bytes_written, secs) / 1e6);
	fe_json_open(j, "lat_us", '{');
	fe_json_u64(j, "n", h.n);
	fe_json_dbl(j, "p50", quantile(&h, 0.50));
	fe_json_dbl(j, "p90", quantile(&h, 0.90));
	fe_json_dbl(j, "p99", quantile(&h, 0.99));
	fe_json_dbl(j, "p999", quantile(&h, 0.999));
	fe_json_dbl(j, "max", (double)h.max_ns / 1e3);
	fe_json_dbl(j, "avg", h.n ? (double)h.sum_ns / (double)h.n / 1e3 : 0);
	fe_json_close(j, '}');
	fe_json_u64(j, "reads", t->st.reads);
	fe_json_u64(j, "writes", t->st.writes);
	fe_json_u64(j, "flushes", t->st.flushes);
	fe_json_u64(j, "bytes_read", t->st.bytes_read);
	fe_json_u64(j, "bytes_written", t->st.bytes_written);
	fe_json_u64(j, "errors", t->st.errors);
	fe_json_u64(j, "reads_verified", t->st.reads_verified);
	fe_json_u64(j, "outstanding_at_exit", ld->outstanding_at_exit);
	fe_json_u64(j, "unacked_writes", ld->unacked_writes);
}

void
blk_summary(struct fe_run **runs, unsigned int n, struct fe_json *j, double secs)
{
	const struct fe_run *r = runs[0];
	const struct blk_ctx *b = r->kpriv;
	struct blk_totals t;

	(void)n;
	(void)secs;
	if (b == NULL) {
		fe_json_null(j, "config");
		return;
	}
	add_totals(b, &t);
	config_fields(b, j);
	fe_json_u64(j, "disk_bytes", blk_disk_bytes(b));
	fe_json_bool(j, "inflight_requested", b->o->inflight);
	fe_json_bool(j, "inflight", b->inflight);
	fe_json_u64(j, "inflight_mmap_size", b->inflight ? b->inflight_info.mmap_size : 0);
	fe_json_u64(j, "inflight_pending_at_reconnect", b->inflight_pending);
	fe_json_u64(j, "reconnects", r->reconnects);
	fe_json_u64(j, "resubmitted_completions", t.st.resubmitted);
	fe_json_u64(j, "ops_run", b->ops_run);
	fe_json_u64(j, "ops_status_nonzero", b->ops_status_nonzero);
	fe_json_u64(j, "ops_not_completed", b->ops_not_completed);
	fe_json_u64(j, "hostile_run", b->hostile_run);
	fe_json_u64(j, "hostile_completed", b->hostile_completed);
	fe_json_u64(j, "hostile_device_alive", b->hostile_alive);
	fe_json_u64(j, "verify_errors", b->ops_verify_errors + t.st.verify_errors);
	fe_json_u64(j, "requests_submitted", t.st.submitted);
	fe_json_u64(j, "requests_completed", t.st.completed);
	load_fields(b, &t, j);
	fe_json_u64(j, "bad_used_ids", t.st.bad_used);
	fe_json_u64(j, "kicks", t.kicks);
	fe_json_dbl(j, "idle_poll_ratio", b->polls ? (double)b->idle_polls / (double)b->polls : 0);
	fe_json_open(j, "queue_stats", '[');
	for (unsigned int i = 0; i < b->nq; i++) {
		const struct blk_qstats *s = &b->q[i].st;

		fe_json_open(j, NULL, '{');
		fe_json_u64(j, "queue", i);
		fe_json_u64(j, "submitted", s->submitted);
		fe_json_u64(j, "completed", s->completed);
		fe_json_u64(j, "reads", s->reads);
		fe_json_u64(j, "writes", s->writes);
		fe_json_u64(j, "errors", s->errors);
		fe_json_u64(j, "resubmitted", s->resubmitted);
		fe_json_u64(j, "bad_used_ids", s->bad_used);
		fe_json_close(j, '}');
	}
	fe_json_close(j, ']');
}

void
blk_dev_summary(struct fe_run *r, struct fe_json *j)
{
	struct blk_totals t;

	add_totals(r->kpriv, &t);
	fe_json_u64(j, "requests_completed", t.st.completed);
}

int
blk_verdict(struct fe_run **runs, unsigned int n, char *reason, size_t len)
{
	const struct blk_ctx *b = runs[0]->kpriv;
	struct blk_totals t;
	uint64_t bad;

	(void)n;
	if (b == NULL)
		return 0;
	if (b->fail_code != 0) {
		snprintf(reason, len, "%s", b->fail_reason);
		return b->fail_code;
	}
	add_totals(b, &t);
	bad = b->ops_verify_errors + t.st.verify_errors;
	if (bad > 0) {
		snprintf(reason, len, "%llu verify errors: data read back differs from the pattern",
			(unsigned long long)bad);
		return FE_EXIT_FAIL;
	}
	return 0;
}
