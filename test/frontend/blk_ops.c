/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --kind blk options and the --blk-ops script: "OP;OP;..." run in order on queue 0,
 * one request at a time, one "blk_op" JSON line each.
 *   OP   = NAME[:ARG,ARG,...]   NAME = write read read-zero flush getid discard wzeroes
 *   ARG  = off=B len=B seed=N segs=N indirect=0|1 unmap=0|1, or bare values: off, len
 * Offsets and lengths are bytes; unaligned values are sent as asked (the sector is
 * off / 512, the data length is len) so that backends can be tested for refusals.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk.h"
#include "run.h"

static const char *const op_names[] = {
	[BLK_OP_WRITE] = "write",
	[BLK_OP_READ] = "read",
	[BLK_OP_READ_ZERO] = "read-zero",
	[BLK_OP_FLUSH] = "flush",
	[BLK_OP_GETID] = "getid",
	[BLK_OP_DISCARD] = "discard",
	[BLK_OP_WZEROES] = "wzeroes",
};

static bool
num(const char *s, uint64_t *v)
{
	char *end;

	if (*s == '\0' || *s == '-')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno == 0 && *end == '\0';
}

static bool
has_data(uint8_t type)
{
	return type == BLK_OP_WRITE || type == BLK_OP_READ || type == BLK_OP_READ_ZERO;
}

static int
parse_arg(struct blk_op *op, char *arg, unsigned int *pos, char *err, size_t errlen)
{
	char *eq = strchr(arg, '=');
	const char *k = arg, *v = arg;
	uint64_t x;

	if (eq != NULL) {
		*eq = '\0';
		v = eq + 1;
	} else {
		k = *pos == 0 ? "off" : *pos == 1 ? "len" : "";
		(*pos)++;
	}
	if (!num(v, &x)) {
		snprintf(err, errlen, "bad number '%s' in --blk-ops", v);
		return -EINVAL;
	}
	if (strcmp(k, "off") == 0)
		op->off = x;
	else if (strcmp(k, "len") == 0)
		op->len = x;
	else if (strcmp(k, "seed") == 0 && (op->type == BLK_OP_WRITE || op->type == BLK_OP_READ))
		op->seed = x, op->has_seed = true;
	else if (strcmp(k, "segs") == 0 && has_data(op->type) && x >= 1 && x <= BLK_MAX_SEGS)
		op->segs = (uint32_t)x;
	else if (strcmp(k, "indirect") == 0 && x <= 1)
		op->indirect = x == 1;
	else if (strcmp(k, "unmap") == 0 && op->type == BLK_OP_WZEROES && x <= 1)
		op->unmap = x == 1;
	else {
		snprintf(err, errlen, "--blk-ops: '%s' is not an argument of %s (or out of range)",
			eq != NULL ? k : v, op_names[op->type]);
		return -EINVAL;
	}
	return 0;
}

static int
parse_one(char *tok, struct blk_op *op, char *err, size_t errlen)
{
	char *colon = strchr(tok, ':'), *save = NULL, *arg;
	unsigned int pos = 0, t;

	if (colon != NULL)
		*colon = '\0';
	for (t = 0; t < sizeof(op_names) / sizeof(op_names[0]); t++)
		if (strcmp(tok, op_names[t]) == 0)
			break;
	if (t == sizeof(op_names) / sizeof(op_names[0])) {
		snprintf(err, errlen, "--blk-ops: unknown op '%s'", tok);
		return -EINVAL;
	}
	*op = (struct blk_op){.type = (uint8_t)t, .segs = 1};
	for (arg = colon != NULL ? strtok_r(colon + 1, ",", &save) : NULL; arg != NULL;
		arg = strtok_r(NULL, ",", &save))
		if (parse_arg(op, arg, &pos, err, errlen) < 0)
			return -EINVAL;
	if ((has_data(t) || t == BLK_OP_DISCARD || t == BLK_OP_WZEROES) && op->len == 0) {
		snprintf(err, errlen, "--blk-ops: %s needs len > 0", op_names[t]);
		return -EINVAL;
	}
	if (op->len > BLK_MAX_OP_LEN || op->segs > op->len + (has_data(t) ? 0 : 1)) {
		snprintf(err, errlen, "--blk-ops: %s: len must be <= %llu and >= segs", op_names[t],
			(unsigned long long)BLK_MAX_OP_LEN);
		return -EINVAL;
	}
	return 0;
}

int
blk_ops_parse(const char *s, struct blk_op *ops, unsigned int max, unsigned int *n, char *err,
	size_t errlen)
{
	char *buf = strdup(s), *save = NULL, *tok;
	int rc = 0;

	if (buf == NULL)
		return -ENOMEM;
	*n = 0;
	for (tok = strtok_r(buf, ";", &save); tok != NULL && rc == 0;
		tok = strtok_r(NULL, ";", &save)) {
		if (*n == max) {
			snprintf(err, errlen, "--blk-ops: more than %u ops", max);
			rc = -EINVAL;
		} else {
			rc = parse_one(tok, &ops[*n], err, errlen);
			(*n)++;
		}
	}
	free(buf);
	if (rc == 0 && *n == 0) {
		snprintf(err, errlen, "--blk-ops: no op");
		rc = -EINVAL;
	}
	return rc;
}

int
blk_check_opts(struct fe_opts *o, char *err, size_t errlen)
{
	static struct blk_op ops[BLK_MAX_OPS];
	unsigned int n;

#define BLK_FAIL(...) (snprintf(err, errlen, __VA_ARGS__), -EINVAL)
	if (o->kind != FE_KIND_BLK) {
		if (o->blk_ops != NULL || o->n_hostile > 0 || o->blk_load || o->inflight ||
			o->reconnect_timeout_s > 0 || o->ack_log != NULL || o->verify)
			return BLK_FAIL("--blk-*, --inflight, --reconnect-timeout-s, --ack-log and "
					"--verify need --kind blk");
		return 0;
	}
	if (o->socket2_path != NULL)
		return BLK_FAIL("--kind blk drives one device: no --socket2 / --listen2");
	if (o->tx || o->rx || o->echo)
		return BLK_FAIL("--tx / --rx / --echo are net traffic; blk uses --blk-ops, "
				"--blk-hostile, --blk-load");
	if (o->blk_ops != NULL && blk_ops_parse(o->blk_ops, ops, BLK_MAX_OPS, &n, err, errlen) < 0)
		return -EINVAL;
	if (o->flush_every > 0 && !o->blk_load)
		return BLK_FAIL("--flush-every shapes --blk-load");
	if (o->verify && !o->blk_load)
		return BLK_FAIL(
			"--verify checks --blk-load reads (--blk-ops reads verify with seed=)");
	if (o->blk_load) {
		if (o->qd < 1 || 3ULL * o->qd > o->ring_size)
			return BLK_FAIL("--qd %u needs 3 descriptors per request: 1 <= qd <= "
					"--ring-size / 3",
				o->qd);
		if (o->bs < BLK_SECTOR || o->bs % BLK_SECTOR != 0 || o->bs > BLK_MAX_BS)
			return BLK_FAIL("--bs must be a multiple of 512 in 512..%llu",
				(unsigned long long)BLK_MAX_BS);
		if (o->rw_mix > 100)
			return BLK_FAIL("--rw-mix is a percentage of reads, 0..100");
		if (o->region_bytes != 0 && o->region_bytes < o->bs)
			return BLK_FAIL("--region-bytes must hold at least one --bs block");
	}
#undef BLK_FAIL
	if (o->timeout_s < 0)
		o->timeout_s =
			(o->duration_s > 0 ? o->duration_s + 30 : 60) + o->reconnect_timeout_s;
	return 0;
}

/* Byte range of data segment k of segs: sector boundaries when there are enough sectors. */
static void
seg_range(uint64_t len, uint32_t segs, uint32_t k, uint64_t *start, uint64_t *end)
{
	uint64_t sectors = len / BLK_SECTOR;

	if (sectors >= segs) {
		*start = sectors * k / segs * BLK_SECTOR;
		*end = k == segs - 1 ? len : sectors * (k + 1) / segs * BLK_SECTOR;
	} else {
		*start = len * k / segs;
		*end = len * (k + 1) / segs;
	}
}

struct chain_ent {
	uint64_t gpa;
	uint32_t len;
	uint16_t flags;
};

/* Lays the chain out in the ring, or in indirect table 0; 0 or -ENOSPC. */
static int
submit_chain(struct blk_ctx *b, struct blk_req *req, const struct chain_ent *e, unsigned int ne,
	bool indirect)
{
	struct blk_queue *q = &b->q[0];

	if (indirect) {
		if (!blk_desc_alloc(q, 1, req->chain))
			return -ENOSPC;
		for (unsigned int i = 0; i < ne; i++)
			blk_set_idesc(b, b->itable_gpa[0], i, e[i].gpa, e[i].len,
				(uint16_t)(e[i].flags | (i + 1 < ne ? VRING_DESC_F_NEXT : 0)),
				(uint16_t)(i + 1 < ne ? i + 1 : 0));
		blk_set_desc(b, q, req->chain[0], b->itable_gpa[0],
			(uint32_t)(ne * sizeof(struct vring_desc)), VRING_DESC_F_INDIRECT, 0);
		blk_submit(b, q, req, req->chain[0], 1, fe_now_ns());
	} else {
		if (!blk_desc_alloc(q, ne, req->chain))
			return -ENOSPC;
		for (unsigned int i = 0; i < ne; i++)
			blk_set_desc(b, q, req->chain[i], e[i].gpa, e[i].len,
				(uint16_t)(e[i].flags | (i + 1 < ne ? VRING_DESC_F_NEXT : 0)),
				i + 1 < ne ? req->chain[i + 1] : 0);
		blk_submit(b, q, req, req->chain[0], ne, fe_now_ns());
	}
	blk_publish(q);
	return 0;
}

static const uint32_t op_type[] = {
	[BLK_OP_WRITE] = VIRTIO_BLK_T_OUT,
	[BLK_OP_READ] = VIRTIO_BLK_T_IN,
	[BLK_OP_READ_ZERO] = VIRTIO_BLK_T_IN,
	[BLK_OP_FLUSH] = VIRTIO_BLK_T_FLUSH,
	[BLK_OP_GETID] = VIRTIO_BLK_T_GET_ID,
	[BLK_OP_DISCARD] = VIRTIO_BLK_T_DISCARD,
	[BLK_OP_WZEROES] = VIRTIO_BLK_T_WRITE_ZEROES,
};

/* Builds the chain: header, data (segments with gaps, or id / dwz segment), status. */
static unsigned int
build(struct blk_ctx *b, const struct blk_op *op, struct blk_req *req, struct chain_ent *e)
{
	unsigned int ne = 0;

	e[ne++] = (struct chain_ent){req->hdr_gpa, sizeof(struct virtio_blk_outhdr), 0};
	if (has_data(op->type)) {
		memset(b->op_buf, BLK_POISON, b->op_buf_len);
		for (uint32_t k = 0; k < op->segs; k++) {
			uint64_t s, end, at;

			seg_range(op->len, op->segs, k, &s, &end);
			at = s + (uint64_t)k * BLK_SEG_GAP;
			if (op->type == BLK_OP_WRITE)
				blk_pattern_fill(b->op_buf + at, op->off + s, end - s, op->seed);
			e[ne++] = (struct chain_ent){b->op_buf_gpa + at, (uint32_t)(end - s),
				op->type == BLK_OP_WRITE ? 0 : VRING_DESC_F_WRITE};
		}
	} else if (op->type == BLK_OP_GETID) {
		memset(b->op_buf, 0, VIRTIO_BLK_ID_BYTES + 1);
		e[ne++] =
			(struct chain_ent){b->op_buf_gpa, VIRTIO_BLK_ID_BYTES, VRING_DESC_F_WRITE};
	} else if (op->type == BLK_OP_DISCARD || op->type == BLK_OP_WZEROES) {
		struct virtio_blk_dwz *d = (struct virtio_blk_dwz *)((uint8_t *)req->hdr + 16);

		d->sector = op->off / BLK_SECTOR;
		d->num_sectors = (uint32_t)(op->len / BLK_SECTOR);
		d->flags = op->unmap ? VIRTIO_BLK_WZ_F_UNMAP : 0;
		e[ne++] = (struct chain_ent){req->hdr_gpa + 16, sizeof(*d), 0};
	}
	e[ne++] = (struct chain_ent){req->st_gpa, 1, VRING_DESC_F_WRITE};
	return ne;
}

/* Read checks: pattern or zeroes in every segment, poison intact in the gaps. */
static void
check_read(struct blk_ctx *b, const struct blk_op *op, struct fe_json *j)
{
	int64_t bad = -1, overrun = -1;

	for (uint32_t k = 0; k < op->segs && bad < 0; k++) {
		uint64_t s, end, at = 0;
		int64_t m;

		seg_range(op->len, op->segs, k, &s, &end);
		at = s + (uint64_t)k * BLK_SEG_GAP;
		m = op->type == BLK_OP_READ_ZERO
			    ? blk_zero_check(b->op_buf + at, end - s)
			    : blk_pattern_check(b->op_buf + at, op->off + s, end - s, op->seed);
		if (m >= 0)
			bad = (int64_t)s + m;
		for (uint64_t g = 0; k + 1 < op->segs && g < BLK_SEG_GAP && overrun < 0; g++)
			if (b->op_buf[at + (end - s) + g] != BLK_POISON)
				overrun = (int64_t)(at + (end - s) + g);
	}
	fe_json_bool(j, "verified", bad < 0 && overrun < 0);
	if (bad >= 0)
		fe_json_u64(j, "mismatch_at", (uint64_t)bad);
	if (overrun >= 0)
		fe_json_u64(j, "overrun_at", (uint64_t)overrun);
	if (bad >= 0 || overrun >= 0)
		b->ops_verify_errors++;
}

static void
report_id(const struct blk_ctx *b, struct fe_json *j)
{
	char id[VIRTIO_BLK_ID_BYTES + 1];

	for (unsigned int i = 0; i <= VIRTIO_BLK_ID_BYTES; i++) {
		uint8_t c = i < VIRTIO_BLK_ID_BYTES ? b->op_buf[i] : 0;

		id[i] = (char)(c == 0 || (c >= 0x20 && c < 0x7f) ? c : '?');
		if (c == 0)
			break;
	}
	id[VIRTIO_BLK_ID_BYTES] = '\0';
	fe_json_str(j, "id", id);
}

/* One op; false when the script must stop (not completed, no room). */
static bool
run_op(struct blk_ctx *b, unsigned int idx, const struct blk_op *op)
{
	static struct chain_ent e[BLK_MAX_SEGS + 2];
	struct blk_req *req = blk_script_req(b);
	struct fe_json j;
	unsigned int ne;
	int rc = -ENOSPC;

	if (req != NULL) {
		blk_req_prepare(req, op_type[op->type], op->off / BLK_SECTOR);
		req->off = op->off;
		req->len = op->len;
		ne = build(b, op, req, e);
		rc = submit_chain(b, req, e, ne, op->indirect);
	}
	if (rc < 0) {
		b->fail_code = FE_EXIT_FAIL;
		snprintf(b->fail_reason, sizeof(b->fail_reason),
			"--blk-ops op %u (%s): not enough free descriptors (raise --ring-size)",
			idx, op_names[op->type]);
		return false;
	}
	rc = blk_wait(b, req, b->o->op_timeout_ms);
	b->ops_run++;
	fe_json_begin(&j, "blk_op");
	fe_json_u64(&j, "index", idx);
	fe_json_str(&j, "op", op_names[op->type]);
	fe_json_u64(&j, "offset", op->off);
	fe_json_u64(&j, "len", op->len);
	if (has_data(op->type))
		fe_json_u64(&j, "segs", op->segs);
	fe_json_bool(&j, "indirect", op->indirect);
	if (op->has_seed)
		fe_json_u64(&j, "seed", op->seed);
	fe_json_bool(&j, "completed", rc == 0);
	if (rc == 0) {
		fe_json_u64(&j, "status", req->status);
		fe_json_u64(&j, "used_len", req->used_len);
		fe_json_dbl(&j, "us", (double)(req->done_ns - req->submit_ns) / 1e3);
		if (req->status != VIRTIO_BLK_S_OK)
			b->ops_status_nonzero++;
		if (req->status == VIRTIO_BLK_S_OK && op->type == BLK_OP_WRITE)
			blk_ack(b, op->off, op->len, op->seed);
		if (req->status == VIRTIO_BLK_S_OK &&
			(op->type == BLK_OP_READ_ZERO || (op->type == BLK_OP_READ && op->has_seed)))
			check_read(b, op, &j);
		if (req->status == VIRTIO_BLK_S_OK && op->type == BLK_OP_GETID)
			report_id(b, &j);
	} else {
		fe_json_null(&j, "status");
		fe_json_null(&j, "used_len");
		fe_json_dbl(&j, "us", (double)(fe_now_ns() - req->submit_ns) / 1e3);
	}
	fe_json_end(&j);
	if (rc == 0)
		return true;
	if (rc == -ETIMEDOUT) {
		b->ops_not_completed++;
		b->fail_code = FE_EXIT_FAIL;
		snprintf(b->fail_reason, sizeof(b->fail_reason),
			"--blk-ops op %u (%s) not completed within %u ms (--op-timeout-ms)", idx,
			op_names[op->type], b->o->op_timeout_ms);
	}
	return false;
}

void
blk_ops_run(struct blk_ctx *b)
{
	for (unsigned int i = 0; i < b->nops && !blk_stopping(b); i++)
		if (!run_op(b, i, &b->ops[i]))
			break;
}
