/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --blk-hostile KIND[,KIND]: one malformed request each on queue 0, then one valid
 * read (4096 bytes at offset 0) to prove the device still serves. A request the
 * backend never completes keeps its descriptors (they are never reused), so a late
 * completion cannot be mistaken for another request's.
 *
 * Reads (the device writes guest memory) are used wherever the kind allows, so the
 * disk is not changed; write-ro writes 4096 bytes of pattern seed 0x524f at offset 0.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "blk.h"
#include "run.h"

#define H_SEED_RO   0x524f /* "RO" */
#define H_ALIVE_LEN 4096

static const char *const names[BLK_H_COUNT] = {
	[BLK_H_LOOP] = "loop",
	[BLK_H_INDIRECT_LOOP] = "indirect-loop",
	[BLK_H_OOB_ADDR] = "oob-addr",
	[BLK_H_OOB_LEN] = "oob-len",
	[BLK_H_SHORT_HEADER] = "short-header",
	[BLK_H_NO_STATUS] = "no-status",
	[BLK_H_STATUS_IN_READABLE] = "status-in-readable",
	[BLK_H_TOO_MANY_SEGS] = "too-many-segs",
	[BLK_H_BEYOND_CAPACITY] = "beyond-capacity",
	[BLK_H_UNALIGNED_LEN] = "unaligned-len",
	[BLK_H_BAD_TYPE] = "bad-type",
	[BLK_H_WRITE_RO] = "write-ro",
	[BLK_H_HEAD_OOB] = "head-oob",
	[BLK_H_NESTED_INDIRECT] = "nested-indirect",
};

const char *
blk_hostile_name(unsigned int kind)
{
	return kind < BLK_H_COUNT ? names[kind] : "?";
}

int
blk_hostile_parse(const char *arg, struct fe_opts *o, char *err, size_t errlen)
{
	char buf[512], *save = NULL, *tok;

	if (strlen(arg) >= sizeof(buf)) {
		snprintf(err, errlen, "--blk-hostile: list too long");
		return -EINVAL;
	}
	strcpy(buf, arg);
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		unsigned int k;

		for (k = 0; k < BLK_H_COUNT && strcmp(tok, names[k]) != 0; k++)
			;
		if (k == BLK_H_COUNT) {
			snprintf(err, errlen, "--blk-hostile: unknown kind '%s'", tok);
			return -EINVAL;
		}
		if (o->n_hostile == FE_MAX_HOSTILE) {
			snprintf(err, errlen, "--blk-hostile: more than %d kinds", FE_MAX_HOSTILE);
			return -EINVAL;
		}
		o->hostile[o->n_hostile++] = (uint8_t)k;
	}
	return 0;
}

struct ent {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags;
};

/* What one kind sends, and what the wait looks for. */
struct plan {
	const char *note; /* set: skipped, with the reason */
	bool raw_head;	  /* head-oob: an avail entry with no request */
	bool ro_write;	  /* write-ro: ack-log the write if it succeeds */
};

/* Ring chain from e[0..n): head is chain[0]; loop_to >= 0 links the last entry back. */
static bool
ring_chain(struct blk_ctx *b, struct blk_req *req, const struct ent *e, unsigned int n, int loop_to)
{
	struct blk_queue *q = &b->q[0];

	if (!blk_desc_alloc(q, n, req->chain))
		return false;
	for (unsigned int i = 0; i < n; i++) {
		bool last = i + 1 == n;
		uint16_t next = last ? (loop_to >= 0 ? req->chain[loop_to] : 0) : req->chain[i + 1];
		uint16_t flags =
			(uint16_t)(e[i].flags | (!last || loop_to >= 0 ? VRING_DESC_F_NEXT : 0));

		blk_set_desc(b, q, req->chain[i], e[i].gpa, e[i].len, flags, next);
	}
	return true;
}

/* Indirect table t from e[0..n), chained in order; loop_to >= 0 links the last back. */
static void
table_chain(struct blk_ctx *b, unsigned int t, const struct ent *e, unsigned int n, int loop_to)
{
	for (unsigned int i = 0; i < n; i++) {
		bool last = i + 1 == n;
		uint16_t flags =
			(uint16_t)(e[i].flags | (!last || loop_to >= 0 ? VRING_DESC_F_NEXT : 0));

		blk_set_idesc(b, b->itable_gpa[t], i, e[i].gpa, e[i].len, flags,
			(uint16_t)(last ? (loop_to >= 0 ? loop_to : 0) : i + 1));
	}
}

/* One ring descriptor pointing at indirect table t of n entries. */
static bool
ring_indirect(struct blk_ctx *b, struct blk_req *req, unsigned int t, unsigned int n)
{
	struct blk_queue *q = &b->q[0];

	if (!blk_desc_alloc(q, 1, req->chain))
		return false;
	blk_set_desc(b, q, req->chain[0], b->itable_gpa[t],
		(uint32_t)(n * sizeof(struct vring_desc)), VRING_DESC_F_INDIRECT, 0);
	return true;
}

static uint32_t
seg_max(const struct blk_ctx *b)
{
	bool have = (b->r->features_acked & BIT64(VIRTIO_BLK_F_SEG_MAX)) != 0;

	return have && b->have_config ? b->cfg.seg_max : 0;
}

/* Builds the request of one kind; returns the number of ring descriptors it holds. */
static int
build(struct blk_ctx *b, unsigned int kind, struct blk_req *req, struct plan *p)
{
	static struct ent e[BLK_ITABLE_MAX];
	struct guest_mem *gm = &b->r->gm;
	uint64_t hdr = req->hdr_gpa, st = req->st_gpa, data = b->h_buf_gpa;
	const struct ent H = {hdr, 16, 0}, S = {st, 1, VRING_DESC_F_WRITE};
	const struct ent D512 = {data, 512, VRING_DESC_F_WRITE};
	uint32_t n;

	blk_req_prepare(req, VIRTIO_BLK_T_IN, 0);
	switch (kind) {
	case BLK_H_LOOP:
		e[0] = H, e[1] = D512;
		return ring_chain(b, req, e, 2, 0) ? 2 : -ENOSPC;
	case BLK_H_INDIRECT_LOOP:
		e[0] = H, e[1] = D512;
		table_chain(b, 1, e, 2, 0);
		return ring_indirect(b, req, 1, 2) ? 1 : -ENOSPC;
	case BLK_H_OOB_ADDR:
		/* 1 GiB past the end of guest memory: in no region, and never mapped. */
		e[0] = H, e[1] = (struct ent){gm->size + (1ULL << 30), 4096, VRING_DESC_F_WRITE};
		e[2] = S;
		return ring_chain(b, req, e, 3, -1) ? 3 : -ENOSPC;
	case BLK_H_OOB_LEN:
		if (gm->next + 4096 > gm->size) {
			p->note = "skipped: guest memory is full up to its end (raise --mem-mb)";
			return 0;
		}
		e[0] = H, e[1] = (struct ent){gm->size - 512, 4096, VRING_DESC_F_WRITE}, e[2] = S;
		return ring_chain(b, req, e, 3, -1) ? 3 : -ENOSPC;
	case BLK_H_SHORT_HEADER:
		e[0] = (struct ent){hdr, 8, 0}, e[1] = D512, e[2] = S;
		return ring_chain(b, req, e, 3, -1) ? 3 : -ENOSPC;
	case BLK_H_NO_STATUS:
		e[0] = H, e[1] = (struct ent){data, 512, 0};
		return ring_chain(b, req, e, 2, -1) ? 2 : -ENOSPC;
	case BLK_H_STATUS_IN_READABLE:
		/* The status byte sits in device-readable (RO) memory, after the header. */
		e[0] = H, e[1] = D512, e[2] = (struct ent){hdr + 32, 1, 0};
		return ring_chain(b, req, e, 3, -1) ? 3 : -ENOSPC;
	case BLK_H_TOO_MANY_SEGS:
		n = seg_max(b);
		if (n == 0 || n + 1 > BLK_MAX_SEGS) {
			p->note = n == 0 ? "skipped: SEG_MAX not negotiated or seg_max 0"
					 : "skipped: seg_max too large for this driver";
			return 0;
		}
		e[0] = H;
		for (uint32_t k = 0; k <= n; k++)
			e[1 + k] = (struct ent){data + 512ULL * k, 512, VRING_DESC_F_WRITE};
		e[n + 2] = S;
		if (n + 3 <= blk_nfree(&b->q[0]))
			return ring_chain(b, req, e, n + 3, -1) ? (int)n + 3 : -ENOSPC;
		table_chain(b, 1, e, n + 3, -1);
		return ring_indirect(b, req, 1, n + 3) ? 1 : -ENOSPC;
	case BLK_H_BEYOND_CAPACITY:
		req->hdr->sector = b->cfg.capacity;
		e[0] = H, e[1] = (struct ent){data, 4096, VRING_DESC_F_WRITE}, e[2] = S;
		return ring_chain(b, req, e, 3, -1) ? 3 : -ENOSPC;
	case BLK_H_UNALIGNED_LEN:
		e[0] = H, e[1] = (struct ent){data, 1000, VRING_DESC_F_WRITE}, e[2] = S;
		return ring_chain(b, req, e, 3, -1) ? 3 : -ENOSPC;
	case BLK_H_BAD_TYPE:
		req->hdr->type = 0x7777;
		e[0] = H, e[1] = D512, e[2] = S;
		return ring_chain(b, req, e, 3, -1) ? 3 : -ENOSPC;
	case BLK_H_WRITE_RO:
		req->hdr->type = VIRTIO_BLK_T_OUT;
		blk_pattern_fill(b->h_buf, 0, 4096, H_SEED_RO);
		p->ro_write = true;
		e[0] = H, e[1] = (struct ent){data, 4096, 0}, e[2] = S;
		return ring_chain(b, req, e, 3, -1) ? 3 : -ENOSPC;
	case BLK_H_HEAD_OOB:
		p->raw_head = true;
		return 0;
	case BLK_H_NESTED_INDIRECT:
		/* Table 1: header, then an INDIRECT entry naming table 2 (data + status). */
		e[0] = D512, e[1] = S;
		table_chain(b, 2, e, 2, -1);
		e[0] = H, e[1] = (struct ent){b->itable_gpa[2], 2 * sizeof(struct vring_desc),
				  VRING_DESC_F_INDIRECT};
		table_chain(b, 1, e, 2, -1);
		return ring_indirect(b, req, 1, 2) ? 1 : -ENOSPC;
	}
	return -EINVAL;
}

/* The valid read after each kind: true when it completes with OK in time. */
static bool
alive(struct blk_ctx *b)
{
	struct blk_req *req = blk_script_req(b);
	struct ent e[3];

	if (req == NULL)
		return false;
	blk_req_prepare(req, VIRTIO_BLK_T_IN, 0);
	e[0] = (struct ent){req->hdr_gpa, 16, 0};
	e[1] = (struct ent){
		b->h_buf_gpa + b->h_buf_len - H_ALIVE_LEN, H_ALIVE_LEN, VRING_DESC_F_WRITE};
	e[2] = (struct ent){req->st_gpa, 1, VRING_DESC_F_WRITE};
	if (!ring_chain(b, req, e, 3, -1))
		return false;
	blk_submit(b, &b->q[0], req, req->chain[0], 3, fe_now_ns());
	blk_publish(&b->q[0]);
	return blk_wait(b, req, b->o->hostile_timeout_ms) == 0 && req->status == VIRTIO_BLK_S_OK;
}

/* head-oob: waits for any used element naming an id we never gave out. */
static bool
wait_raw(struct blk_ctx *b, uint64_t bad_before, unsigned int timeout_ms)
{
	uint64_t deadline = fe_now_ns() + timeout_ms * NS_PER_MS;

	for (;;) {
		uint64_t now = fe_now_ns();
		unsigned int work = blk_poll_all(b, now);

		if (FE_STAT_GET(b->q[0].st.bad_used) != bad_before)
			return true;
		if (blk_stopping(b) || now >= deadline)
			return false;
		blk_idle(b, work);
	}
}

static void
run_kind(struct blk_ctx *b, unsigned int kind)
{
	struct blk_queue *q = &b->q[0];
	struct blk_req *req = blk_script_req(b);
	struct plan p = {0};
	uint32_t epoch = atomic_load(&b->epoch);
	uint64_t bad_before = FE_STAT_GET(q->st.bad_used), t0 = fe_now_ns();
	bool completed = false;
	struct fe_json j;
	int nd = req != NULL ? build(b, kind, req, &p) : -ENOSPC;

	fe_json_begin(&j, "blk_hostile");
	fe_json_str(&j, "kind", names[kind]);
	if (nd < 0 || p.note != NULL) {
		fe_json_bool(&j, "completed", false);
		fe_json_null(&j, "status");
		fe_json_null(&j, "used_len");
		fe_json_str(&j, "note", p.note != NULL ? p.note : "skipped: no free descriptors");
		fe_json_bool(&j, "device_alive", alive(b));
		fe_json_end(&j);
		return;
	}
	b->hostile_run++;
	if (p.raw_head) {
		blk_push_raw(q, q->vq.size); /* descriptor index == ring size: out of range */
		blk_publish(q);
		completed = wait_raw(b, bad_before, b->o->hostile_timeout_ms);
		fe_json_bool(&j, "completed", completed);
		fe_json_null(&j, "status");
		if (completed) {
			fe_json_u64(&j, "used_id", q->last_bad_id);
			fe_json_u64(&j, "used_len", q->last_bad_len);
		} else {
			fe_json_null(&j, "used_len");
		}
	} else {
		blk_submit(b, q, req, req->chain[0], (unsigned int)nd, t0);
		blk_publish(q);
		completed = blk_wait(b, req, b->o->hostile_timeout_ms) == 0;
		fe_json_bool(&j, "completed", completed);
		if (completed) {
			fe_json_u64(&j, "status", req->status);
			fe_json_u64(&j, "used_len", req->used_len);
			if (req->status == 0xff)
				fe_json_str(&j, "note", "status byte not written");
			if (p.ro_write && req->status == VIRTIO_BLK_S_OK)
				blk_ack(b, 0, 4096, H_SEED_RO);
		} else {
			fe_json_null(&j, "status");
			fe_json_null(&j, "used_len");
		}
	}
	fe_json_dbl(&j, "us", (double)(fe_now_ns() - t0) / 1e3);
	if (FE_STAT_GET(q->st.bad_used) != bad_before && !p.raw_head)
		fe_json_u64(&j, "unexpected_used_id", q->last_bad_id);
	if (completed)
		b->hostile_completed++;
	completed = alive(b);
	if (completed)
		b->hostile_alive++;
	fe_json_bool(&j, "device_alive", completed);
	if (p.raw_head)
		fe_json_bool(&j, "ring_usable", completed);
	fe_json_bool(&j, "backend_closed", atomic_load(&b->epoch) != epoch);
	fe_json_end(&j);
}

void
blk_hostile_run(struct blk_ctx *b)
{
	for (unsigned int i = 0; i < b->o->n_hostile && !blk_stopping(b); i++)
		run_kind(b, b->o->hostile[i]);
}
