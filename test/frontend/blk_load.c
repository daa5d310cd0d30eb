/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --blk-load: --qd requests in flight on every queue, --bs bytes each, --rw-mix
 * percent reads, random (default) or sequential blocks of --bs in the first
 * --region-bytes of the disk, for --duration-s (or --count requests), then a drain.
 * --flush-every N makes every Nth request of a queue a flush, which a backend on a real
 * file serves with fdatasync: a request that stays in flight for a while.
 *
 * Every write carries a fresh seed (gen_base + n, gen_base = stream id << 32), so the
 * data of each write is unique. With --verify or --ack-log the driver tracks every
 * block: it never has two requests on one block at once, and remembers the seed of
 * the last write the device acknowledged; --verify reads pick blocks that were
 * written (and acknowledged) earlier in this run and check that seed's pattern. So
 * for each block, the last --ack-log line that names it is what the disk must hold.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk.h"
#include "run.h"

#define BLK_BUSY   1 /* a request on the block is outstanding */
#define BLK_LISTED 2 /* the block is in ld->written */

static inline uint64_t
rnd(struct blk_queue *q)
{
	uint64_t x = q->rng; /* xorshift64* */

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	q->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

int
blk_load_init(struct blk_ctx *b)
{
	const struct fe_opts *o = b->o;
	struct blk_load *ld = &b->ld;
	uint64_t disk = blk_disk_bytes(b);
	uint64_t region = o->region_bytes != 0 ? o->region_bytes : disk;
	char *why = b->r->kind_reason;
	size_t wl = sizeof(b->r->kind_reason);

	if (region > disk) {
		snprintf(why, wl, "--region-bytes %llu is larger than the disk (%llu bytes)",
			(unsigned long long)region, (unsigned long long)disk);
		return -EINVAL;
	}
	ld->bs = o->bs;
	ld->nblocks = region / o->bs;
	if (ld->nblocks == 0) {
		snprintf(why, wl, "the disk (%llu bytes) is smaller than --bs",
			(unsigned long long)disk);
		return -EINVAL;
	}
	ld->track = o->verify || o->ack_log != NULL;
	ld->gen_base = (uint64_t)o->stream_id << 32;
	if (!ld->track)
		return 0;
	if (ld->nblocks > BLK_MAX_TRACKED || ld->nblocks < 2ULL * o->qd * b->nq) {
		snprintf(why, wl,
			"--verify / --ack-log track %llu blocks of --bs: need between 2 * qd * queues "
			"and %llu (set --region-bytes)",
			(unsigned long long)ld->nblocks, (unsigned long long)BLK_MAX_TRACKED);
		return -EINVAL;
	}
	ld->gen = calloc(ld->nblocks, sizeof(*ld->gen));
	ld->busy = calloc(ld->nblocks, sizeof(*ld->busy));
	ld->written = calloc(ld->nblocks, sizeof(*ld->written));
	if (ld->gen == NULL || ld->busy == NULL || ld->written == NULL)
		return -ENOMEM;
	return 0;
}

static uint64_t
pick(struct blk_ctx *b, struct blk_queue *q)
{
	uint64_t blk;

	if (!b->o->seq)
		return rnd(q) % b->ld.nblocks;
	blk = q->seq_next;
	q->seq_next = blk + 1 == b->ld.nblocks ? 0 : blk + 1;
	return blk;
}

/* A flush: header and status only; the block tracking does not know it. */
static void
submit_flush(struct blk_ctx *b, struct blk_queue *q, struct blk_req *req, uint64_t now)
{
	req->is_read = false;
	req->is_flush = true;
	req->off = 0;
	req->len = 0;
	req->seed = 0;
	blk_req_prepare(req, VIRTIO_BLK_T_FLUSH, 0);
	blk_desc_alloc(q, 2, req->chain);
	blk_set_desc(b, q, req->chain[0], req->hdr_gpa, sizeof(struct virtio_blk_outhdr),
		VRING_DESC_F_NEXT, req->chain[1]);
	blk_set_desc(b, q, req->chain[1], req->st_gpa, 1, VRING_DESC_F_WRITE, 0);
	blk_submit(b, q, req, req->chain[0], 2, now);
	b->ld.submitted++;
}

static void
submit(struct blk_ctx *b, struct blk_queue *q, struct blk_req *req, uint64_t now)
{
	const struct fe_opts *o = b->o;
	struct blk_load *ld = &b->ld;
	bool rd = o->rw_mix >= 100 || (o->rw_mix > 0 && rnd(q) % 100 < o->rw_mix);
	bool from_written = false;
	uint64_t blk = 0;

	if (o->flush_every > 0 && ++q->load_n % o->flush_every == 0) {
		submit_flush(b, q, req, now);
		return;
	}
	req->is_flush = false;
	if (rd && o->verify) {
		/* A verified read needs a block written earlier: else this one writes. */
		rd = false;
		for (int t = 0; t < 8 && ld->nwritten > 0 && !rd; t++) {
			blk = ld->written[rnd(q) % ld->nwritten];
			rd = !(ld->busy[blk] & BLK_BUSY);
		}
		from_written = rd;
	}
	if (!from_written) {
		do
			blk = pick(b, q);
		while (ld->track && (ld->busy[blk] & BLK_BUSY));
	}
	if (ld->track)
		ld->busy[blk] |= BLK_BUSY;
	req->is_read = rd;
	req->block = blk;
	req->off = blk * ld->bs;
	req->len = ld->bs;
	blk_req_prepare(req, rd ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT, req->off / BLK_SECTOR);
	if (rd) {
		req->seed = ld->track ? ld->gen[blk] : 0; /* 0: nothing known to check */
	} else {
		req->seed = ld->gen_base + ++ld->gen_next;
		blk_pattern_fill(req->data, req->off, ld->bs, req->seed);
	}
	/* Cannot fail: cli.c made sure that qd * 3 descriptors exist. */
	blk_desc_alloc(q, 3, req->chain);
	blk_set_desc(b, q, req->chain[0], req->hdr_gpa, sizeof(struct virtio_blk_outhdr),
		VRING_DESC_F_NEXT, req->chain[1]);
	blk_set_desc(b, q, req->chain[1], req->data_gpa, (uint32_t)ld->bs,
		(uint16_t)(VRING_DESC_F_NEXT | (rd ? VRING_DESC_F_WRITE : 0)), req->chain[2]);
	blk_set_desc(b, q, req->chain[2], req->st_gpa, 1, VRING_DESC_F_WRITE, 0);
	blk_submit(b, q, req, req->chain[0], 3, now);
	ld->submitted++;
}

static void
verify_error(struct blk_ctx *b, const struct blk_queue *q, const struct blk_req *req, int64_t at)
{
	struct fe_json j;

	if (b->ld.verify_events >= BLK_MAX_VERIFY_EVT)
		return;
	b->ld.verify_events++;
	fe_json_begin(&j, "blk_verify_error");
	fe_json_u64(&j, "queue", q->qi);
	fe_json_u64(&j, "offset", req->off);
	fe_json_u64(&j, "len", req->len);
	fe_json_u64(&j, "seed", req->seed);
	fe_json_u64(&j, "mismatch_at", (uint64_t)at);
	fe_json_end(&j);
}

void
blk_load_complete(struct blk_ctx *b, struct blk_queue *q, struct blk_req *req, uint64_t now)
{
	const struct fe_opts *o = b->o;
	struct blk_load *ld = &b->ld;
	bool ok = req->status == VIRTIO_BLK_S_OK;

	blk_hist_add(&q->hist, now - req->submit_ns);
	if (!ok)
		FE_STAT_ADD(q->st.errors, 1);
	if (req->is_flush) {
		FE_STAT_ADD(q->st.flushes, 1);
		goto next;
	}
	if (req->is_read) {
		FE_STAT_ADD(q->st.reads, 1);
		if (ok)
			FE_STAT_ADD(q->st.bytes_read, req->len);
		if (ok && o->verify && req->seed != 0) {
			int64_t at = blk_pattern_check(req->data, req->off, req->len, req->seed);

			if (at >= 0) {
				FE_STAT_ADD(q->st.verify_errors, 1);
				verify_error(b, q, req, at);
			} else {
				FE_STAT_ADD(q->st.reads_verified, 1);
			}
		}
	} else {
		FE_STAT_ADD(q->st.writes, 1);
		if (ok) {
			FE_STAT_ADD(q->st.bytes_written, req->len);
			blk_ack(b, req->off, req->len, req->seed);
		}
		if (ld->track) {
			/* A failed write leaves the block's content unknown: never verify it. */
			ld->gen[req->block] = ok ? req->seed : 0;
			if (ok && !(ld->busy[req->block] & BLK_LISTED)) {
				ld->busy[req->block] |= BLK_LISTED;
				ld->written[ld->nwritten++] = (uint32_t)req->block;
			}
		}
	}
	if (ld->track)
		ld->busy[req->block] &= (uint8_t)~BLK_BUSY;
next:
	ld->completed++;
	ld->t_end = now;
	if (ld->submitting && (o->count == 0 || ld->submitted < o->count))
		submit(b, q, req, now);
}

static uint32_t
outstanding(const struct blk_ctx *b)
{
	uint32_t n = 0;

	for (unsigned int i = 0; i < b->nq; i++)
		n += b->q[i].outstanding;
	return n;
}

enum fe_stop
blk_load_run(struct blk_ctx *b)
{
	const struct fe_opts *o = b->o;
	struct blk_load *ld = &b->ld;
	uint64_t now = fe_now_ns(), drain_at = UINT64_MAX;
	uint64_t end = o->duration_s > 0 ? now + (uint64_t)(o->duration_s * NS_PER_S) : UINT64_MAX;
	uint64_t drain_ns = o->drain_ms * NS_PER_MS + (uint64_t)(o->reconnect_timeout_s * NS_PER_S);

	ld->t_start = ld->t_end = now;
	ld->submitting = true;
	for (unsigned int i = 0; i < b->nq; i++) {
		struct blk_queue *q = &b->q[i];

		q->seq_next = ld->nblocks * i / b->nq;
		for (unsigned int s = 0; s < q->nslots; s++)
			if (o->count == 0 || ld->submitted < o->count)
				submit(b, q, &q->slots[s], now);
		blk_publish(q);
	}
	for (;;) {
		unsigned int work;

		now = fe_now_ns();
		if (blk_stopping(b)) {
			/* Signal or timeout: drain (--drain-ms) so the ack log is complete. */
			if (!atomic_load(&b->connected))
				break;
			if (ld->submitting || drain_at - now > o->drain_ms * NS_PER_MS)
				drain_at = now + o->drain_ms * NS_PER_MS;
			ld->submitting = false;
		}
		if (ld->submitting && (now >= end || (o->count > 0 && ld->submitted >= o->count))) {
			ld->submitting = false;
			drain_at = now + drain_ns;
		}
		work = blk_poll_all(b, now);
		if (!ld->submitting && (outstanding(b) == 0 || now >= drain_at))
			break;
		blk_idle(b, work);
	}
	return o->duration_s > 0 ? FE_STOP_DURATION : FE_STOP_COUNT;
}

void
blk_load_finish(struct blk_ctx *b)
{
	struct blk_load *ld = &b->ld;

	ld->outstanding_at_exit = 0;
	ld->unacked_writes = 0;
	for (unsigned int i = 0; i < b->nq; i++)
		for (unsigned int s = 0; s < b->q[i].nslots; s++) {
			const struct blk_req *req = &b->q[i].slots[s];

			if (!req->outstanding)
				continue;
			ld->outstanding_at_exit++;
			if (!req->is_read && !req->is_flush)
				ld->unacked_writes++;
		}
}
