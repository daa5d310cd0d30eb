/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --kind blk: kind hooks, guest memory layout, descriptor chains, submit and poll,
 * the data pattern, and the one data thread (ops, then hostile, then load).
 *
 * Guest memory, in this order so that it forms few DMA areas (vIOMMU mappings):
 * rings (RW); device-readable headers, discard segments and indirect tables (RO);
 * status bytes and data buffers (RW).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk.h"
#include "run.h"

#define BLK_HDR_SLOT   64   /* header (16) + discard / write-zeroes segment (16) + spare */
#define BLK_DATA_ALIGN 4096 /* O_DIRECT-friendly data buffers */

/* ---- data pattern ---- */

static inline uint64_t
pattern_key(uint64_t seed)
{
	return (seed + 1) * BLK_PATTERN_MUL;
}

static inline uint8_t
pattern_byte(uint64_t b, uint64_t k)
{
	return (uint8_t)(((b & ~7ULL) ^ k) >> (8 * (b & 7)));
}

void
blk_pattern_fill(uint8_t *buf, uint64_t off, uint64_t len, uint64_t seed)
{
	uint64_t k = pattern_key(seed), i = 0;

	for (; i < len && ((off + i) & 7) != 0; i++)
		buf[i] = pattern_byte(off + i, k);
	for (; i + 8 <= len; i += 8) {
		uint64_t w = (off + i) ^ k;

		memcpy(buf + i, &w, 8);
	}
	for (; i < len; i++)
		buf[i] = pattern_byte(off + i, k);
}

int64_t
blk_pattern_check(const uint8_t *buf, uint64_t off, uint64_t len, uint64_t seed)
{
	uint64_t k = pattern_key(seed), i = 0;

	for (; i < len && ((off + i) & 7) != 0; i++)
		if (buf[i] != pattern_byte(off + i, k))
			return (int64_t)i;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, buf + i, 8);
		if (w != ((off + i) ^ k))
			break; /* the byte loop below finds which */
	}
	for (; i < len; i++)
		if (buf[i] != pattern_byte(off + i, k))
			return (int64_t)i;
	return -1;
}

int64_t
blk_zero_check(const uint8_t *buf, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (buf[i] != 0)
			return (int64_t)i;
	return -1;
}

/* ---- descriptors and requests ---- */

bool
blk_stopping(const struct blk_ctx *b)
{
	return atomic_load_explicit(&b->r->sh->stop, memory_order_relaxed);
}

bool
blk_desc_alloc(struct blk_queue *q, unsigned int n, uint16_t *ids)
{
	if (blk_nfree(q) < n)
		return false;
	for (unsigned int i = 0; i < n; i++)
		ids[i] = q->fifo[q->fhead++ & q->vq.mask];
	return true;
}

void
blk_set_desc(const struct blk_ctx *b, struct blk_queue *q, uint16_t id, uint64_t gpa, uint32_t len,
	uint16_t flags, uint16_t next)
{
	struct vring_desc *d = &q->vq.desc[id];

	d->addr = iommu_dma_addr(&b->r->io, gpa);
	d->len = len;
	d->flags = flags;
	d->next = next;
}

void
blk_set_idesc(const struct blk_ctx *b, uint64_t table_gpa, unsigned int i, uint64_t gpa,
	uint32_t len, uint16_t flags, uint16_t next)
{
	struct vring_desc *d = (struct vring_desc *)gm_va(&b->r->gm, table_gpa) + i;

	d->addr = iommu_dma_addr(&b->r->io, gpa);
	d->len = len;
	d->flags = flags;
	d->next = next;
}

void
blk_submit(struct blk_ctx *b, struct blk_queue *q, struct blk_req *req, uint16_t head,
	unsigned int ndesc, uint64_t now)
{
	req->q = q;
	req->head = head;
	req->ndesc = (uint16_t)ndesc;
	req->outstanding = true;
	req->done = false;
	req->epoch = atomic_load_explicit(&b->epoch, memory_order_relaxed);
	req->submit_ns = now;
	q->by_head[head] = req;
	q->outstanding++;
	blk_push_raw(q, head);
	FE_STAT_ADD(q->st.submitted, 1);
}

void
blk_push_raw(struct blk_queue *q, uint16_t value)
{
	q->vq.avail->ring[q->vq.avail_idx & q->vq.mask] = value;
	q->vq.avail_idx++;
	q->need_publish = true;
}

void
blk_publish(struct blk_queue *q)
{
	q->need_publish = false;
	virtq_publish(&q->vq);
}

/* Takes the completions of one queue. */
static unsigned int
blk_poll(struct blk_ctx *b, struct blk_queue *q, uint64_t now)
{
	struct virtq *vq = &q->vq;
	uint16_t used = virtq_used_idx(vq);
	uint32_t epoch = atomic_load_explicit(&b->epoch, memory_order_acquire);
	unsigned int n = 0;

	while (vq->last_used != used) {
		uint16_t pos = vq->last_used++;
		const struct vring_used_elem *e = &vq->used->ring[pos & vq->mask];
		uint32_t id = e->id;
		struct blk_req *req;

		n++;
		if (id >= vq->size || (req = q->by_head[id]) == NULL) {
			FE_STAT_ADD(q->st.bad_used, 1);
			q->last_bad_id = id;
			q->last_bad_len = e->len;
			continue;
		}
		q->by_head[id] = NULL;
		q->outstanding--;
		req->outstanding = false;
		req->used_len = e->len;
		req->status = *(volatile uint8_t *)req->st;
		req->done_ns = now;
		if (req->epoch != epoch && (int16_t)(pos - atomic_load_explicit(&q->disc_used,
								   memory_order_relaxed)) >= 0)
			FE_STAT_ADD(q->st.resubmitted, 1);
		for (unsigned int k = 0; k < req->ndesc; k++)
			q->fifo[q->ftail++ & vq->mask] = req->chain[k];
		FE_STAT_ADD(q->st.completed, 1);
		if (req->origin == BLK_ORIGIN_LOAD)
			blk_load_complete(b, q, req, now);
		else
			req->done = true;
	}
	if (q->need_publish)
		blk_publish(q);
	return n;
}

unsigned int
blk_poll_all(struct blk_ctx *b, uint64_t now)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < b->nq; i++)
		n += blk_poll(b, &b->q[i], now);
	b->polls++;
	return n;
}

void
blk_idle(struct blk_ctx *b, unsigned int work)
{
	if (work > 0)
		return;
	b->idle_polls++;
	if (b->o->idle_sleep_us > 0)
		usleep(b->o->idle_sleep_us); /* leave the core to others */
	else if (!b->o->no_yield)
		sched_yield(); /* nothing to do: let a peer on this core run */
}

int
blk_wait(struct blk_ctx *b, struct blk_req *req, unsigned int timeout_ms)
{
	uint64_t deadline = fe_now_ns() + timeout_ms * NS_PER_MS;

	for (;;) {
		uint64_t now = fe_now_ns();
		unsigned int work = blk_poll_all(b, now);

		if (req->done)
			return 0;
		if (blk_stopping(b))
			return -EINTR;
		if (now >= deadline)
			return -ETIMEDOUT;
		blk_idle(b, work);
	}
}

struct blk_req *
blk_script_req(struct blk_ctx *b)
{
	for (unsigned int i = 0; i < BLK_SCRIPT_REQS; i++) {
		struct blk_req *req = &b->script[i];

		if (!req->outstanding) {
			req->done = false;
			req->ndesc = 0;
			req->used_len = 0;
			req->seed = 0;
			return req;
		}
	}
	return NULL;
}

void
blk_req_prepare(struct blk_req *req, uint32_t type, uint64_t sector)
{
	memset(req->hdr, 0, BLK_HDR_SLOT);
	req->hdr->type = type;
	req->hdr->reserved = 0;
	req->hdr->sector = sector;
	*req->st = 0xff; /* not a status value: tells whether the device wrote it */
	req->status = 0xff;
	req->done = false;
	req->used_len = 0;
}

void
blk_ack(struct blk_ctx *b, uint64_t off, uint64_t len, uint64_t seed)
{
	if (b->ack != NULL)
		fprintf(b->ack, "%llu %llu %llu\n", (unsigned long long)off,
			(unsigned long long)len, (unsigned long long)seed);
}

uint64_t
blk_disk_bytes(const struct blk_ctx *b)
{
	return b->have_config ? b->cfg.capacity * BLK_SECTOR : 0;
}

/* ---- kind hooks ---- */

static uint64_t
blk_features(const struct fe_opts *o)
{
	uint64_t f = BIT64(VIRTIO_BLK_F_SIZE_MAX) | BIT64(VIRTIO_BLK_F_SEG_MAX) |
		     BIT64(VIRTIO_BLK_F_BLK_SIZE) | BIT64(VIRTIO_BLK_F_FLUSH) |
		     BIT64(VIRTIO_BLK_F_RO) | BIT64(VIRTIO_BLK_F_DISCARD) |
		     BIT64(VIRTIO_BLK_F_WRITE_ZEROES) | BIT64(VIRTIO_BLK_F_TOPOLOGY) |
		     BIT64(VIRTIO_RING_F_INDIRECT_DESC);

	if (o->queues > 1)
		f |= BIT64(VIRTIO_BLK_F_MQ);
	return f;
}

static unsigned int
blk_num_vrings(const struct fe_opts *o)
{
	return o->queues;
}

static bool
blk_control_timed(const struct fe_opts *o)
{
	/* Nothing to run: --duration-s is how long the device is held. */
	return o->blk_ops == NULL && o->n_hostile == 0 && !o->blk_load;
}

static int
alloc_va(struct fe_run *r, uint64_t len, uint64_t align, uint8_t perm, uint64_t *gpa, void **va)
{
	int rc = gm_alloc(&r->gm, len, align, perm, gpa);

	if (rc == 0)
		*va = gm_va(&r->gm, *gpa);
	return rc;
}

static uint64_t
op_buf_len(const struct blk_ctx *b)
{
	uint64_t need = 4096;

	for (unsigned int i = 0; i < b->nops; i++) {
		const struct blk_op *op = &b->ops[i];
		uint64_t l = op->len + (uint64_t)(op->segs > 1 ? op->segs : 1) * BLK_SEG_GAP;

		if (l > need)
			need = l;
	}
	return need;
}

/* Rings, then the RO area, then the RW area (see the top of the file). */
static int
blk_layout(struct fe_run *r, struct blk_ctx *b)
{
	const struct fe_opts *o = r->o;
	void *va = NULL;
	int rc = 0;

	for (unsigned int i = 0; i < b->nq && rc == 0; i++) {
		rc = virtq_init_rings(&b->q[i].vq, i, o->ring_size, &r->gm);
		if (rc == 0)
			b->q[i].vq.avail->flags = 0; /* interrupts wanted, as a QEMU guest */
		r->vq[i] = &b->q[i].vq;
	}
	r->nvrings = b->nq;
	for (unsigned int i = 0; i < b->nq && rc == 0; i++)
		for (unsigned int s = 0; s < b->q[i].nslots && rc == 0; s++) {
			struct blk_req *req = &b->q[i].slots[s];

			rc = alloc_va(
				r, BLK_HDR_SLOT, BLK_HDR_SLOT, VU_ACCESS_RO, &req->hdr_gpa, &va);
			req->hdr = va;
		}
	for (unsigned int i = 0; i < BLK_SCRIPT_REQS && rc == 0; i++) {
		rc = alloc_va(
			r, BLK_HDR_SLOT, BLK_HDR_SLOT, VU_ACCESS_RO, &b->script[i].hdr_gpa, &va);
		b->script[i].hdr = va;
	}
	for (unsigned int i = 0; i < 3 && rc == 0; i++)
		rc = gm_alloc(&r->gm, BLK_ITABLE_MAX * sizeof(struct vring_desc), 64, VU_ACCESS_RO,
			&b->itable_gpa[i]);
	for (unsigned int i = 0; i < b->nq && rc == 0; i++)
		for (unsigned int s = 0; s < b->q[i].nslots && rc == 0; s++) {
			struct blk_req *req = &b->q[i].slots[s];

			rc = alloc_va(
				r, BLK_HDR_SLOT, BLK_HDR_SLOT, VU_ACCESS_RW, &req->st_gpa, &va);
			req->st = va;
		}
	for (unsigned int i = 0; i < BLK_SCRIPT_REQS && rc == 0; i++) {
		rc = alloc_va(
			r, BLK_HDR_SLOT, BLK_HDR_SLOT, VU_ACCESS_RW, &b->script[i].st_gpa, &va);
		b->script[i].st = va;
	}
	for (unsigned int i = 0; i < b->nq && rc == 0; i++)
		for (unsigned int s = 0; s < b->q[i].nslots && rc == 0; s++) {
			struct blk_req *req = &b->q[i].slots[s];

			rc = alloc_va(r, o->bs, BLK_DATA_ALIGN, VU_ACCESS_RW, &req->data_gpa, &va);
			req->data = va;
		}
	if (rc == 0 && b->nops > 0) {
		b->op_buf_len = op_buf_len(b);
		rc = alloc_va(r, b->op_buf_len, BLK_DATA_ALIGN, VU_ACCESS_RW, &b->op_buf_gpa, &va);
		b->op_buf = va;
	}
	if (rc == 0 && o->n_hostile > 0) {
		b->h_buf_len = (BLK_MAX_SEGS + 8) * BLK_SECTOR;
		rc = alloc_va(r, b->h_buf_len, BLK_DATA_ALIGN, VU_ACCESS_RW, &b->h_buf_gpa, &va);
		b->h_buf = va;
	}
	return rc;
}

static int
blk_init(struct fe_run *r)
{
	const struct fe_opts *o = r->o;
	struct blk_ctx *b = r->kpriv;
	char err[128];
	int rc;

	/* blk_backend_init (GET_CONFIG) already made the context. */
	if (b == NULL)
		return -EINVAL;
	if (o->blk_ops != NULL &&
		blk_ops_parse(o->blk_ops, b->ops, BLK_MAX_OPS, &b->nops, err, sizeof(err)) < 0)
		return -EINVAL; /* cli.c checked it already */
	for (unsigned int i = 0; i < b->nq; i++) {
		struct blk_queue *q = &b->q[i];

		q->qi = i;
		q->nslots = o->blk_load ? o->qd : 0;
		q->slots = calloc(q->nslots ? q->nslots : 1, sizeof(*q->slots));
		q->fifo = calloc(o->ring_size, sizeof(*q->fifo));
		q->by_head = calloc(o->ring_size, sizeof(*q->by_head));
		if (q->slots == NULL || q->fifo == NULL || q->by_head == NULL)
			return -ENOMEM;
		for (unsigned int d = 0; d < o->ring_size; d++)
			q->fifo[q->ftail++] = (uint16_t)d;
		q->rng = ((uint64_t)o->stream_id + 1) * BLK_PATTERN_MUL + i * 0x632BE59BD9B4E019ULL;
		if (q->rng == 0)
			q->rng = 1;
		for (unsigned int s = 0; s < q->nslots; s++) {
			q->slots[s].origin = BLK_ORIGIN_LOAD;
			q->slots[s].chain = q->slots[s].chain3;
		}
	}
	for (unsigned int i = 0; i < BLK_SCRIPT_REQS; i++) {
		b->script[i].origin = BLK_ORIGIN_SCRIPT;
		b->script[i].chain = calloc(BLK_ITABLE_MAX, sizeof(uint16_t));
		if (b->script[i].chain == NULL)
			return -ENOMEM;
	}
	rc = blk_layout(r, b);
	if (rc < 0)
		return rc;
	if (o->blk_load) {
		rc = blk_load_init(b);
		if (rc < 0)
			return rc;
	}
	if (o->ack_log != NULL) {
		b->ack = fopen(o->ack_log, "a");
		if (b->ack == NULL) {
			snprintf(r->kind_reason, sizeof(r->kind_reason), "--ack-log %s: %s",
				o->ack_log, strerror(errno));
			return -errno;
		}
		setvbuf(b->ack, NULL, _IOFBF, 1 << 20);
	}
	return 0;
}

static void *
blk_thread(void *arg)
{
	struct blk_ctx *b = arg;
	const struct fe_opts *o = b->o;
	enum fe_stop why = FE_STOP_DONE;

	if (b->nops > 0)
		blk_ops_run(b);
	if (!blk_stopping(b) && b->fail_code == 0 && o->n_hostile > 0)
		blk_hostile_run(b);
	if (!blk_stopping(b) && b->fail_code == 0 && o->blk_load)
		why = blk_load_run(b);
	if (b->nops == 0 && o->n_hostile == 0 && !o->blk_load) {
		/* Nothing to run: hold the device until the control loop ends the run. */
		while (!blk_stopping(b)) {
			blk_poll_all(b, fe_now_ns());
			usleep(1000);
		}
		return NULL;
	}
	if (b->ack != NULL)
		fflush(b->ack);
	if (!blk_stopping(b))
		fe_run_done(b->r->sh, why);
	return NULL;
}

static int
blk_start(struct fe_run **runs, unsigned int n)
{
	struct blk_ctx *b = runs[0]->kpriv;
	struct fe_shared *sh = runs[0]->sh;
	sigset_t block, old;
	int rc;

	(void)n; /* one device (cli.c refuses --socket2 with blk) */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	sh->t_start_ns = fe_now_ns();
	rc = pthread_create(&b->thread, NULL, blk_thread, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -rc;
	b->running = true;
	sh->started = true;
	return 0;
}

static void
blk_stop(struct fe_run **runs, unsigned int n)
{
	struct blk_ctx *b = runs[0]->kpriv;

	(void)n;
	if (b == NULL || !b->running)
		return;
	atomic_store(&runs[0]->sh->stop, true);
	pthread_join(b->thread, NULL);
	b->running = false;
	runs[0]->sh->t_stop_ns = fe_now_ns();
	if (b->o->blk_load)
		blk_load_finish(b);
	/* A test may read the ack log as soon as it sees the summary line. */
	if (b->ack != NULL)
		fflush(b->ack);
}

static void
blk_destroy(struct fe_run *r)
{
	struct blk_ctx *b = r->kpriv;

	if (b == NULL)
		return;
	for (unsigned int i = 0; i < b->nq; i++) {
		virtq_destroy(&b->q[i].vq);
		free(b->q[i].slots);
		free(b->q[i].fifo);
		free(b->q[i].by_head);
	}
	for (unsigned int i = 0; i < BLK_SCRIPT_REQS; i++)
		free(b->script[i].chain);
	free(b->ld.gen);
	free(b->ld.busy);
	free(b->ld.written);
	if (b->ack != NULL)
		fclose(b->ack);
	blk_inflight_release(b);
	free(b);
	r->kpriv = NULL;
}

const struct fe_kind_ops fe_blk_ops = {
	.name = "blk",
	.mq_bit = VIRTIO_BLK_F_MQ,
	.needs_config = true,
	.protocol_features = blk_protocol_features,
	.backend_init = blk_backend_init,
	.pre_rings = blk_pre_rings,
	.control_timed = blk_control_timed,
	.progress = blk_progress,
	.disconnected = blk_disconnected,
	.reconnected = blk_reconnected,
	.verdict = blk_verdict,
	.features = blk_features,
	.num_vrings = blk_num_vrings,
	.init = blk_init,
	.start = blk_start,
	.stop = blk_stop,
	.totals = blk_totals,
	.summary = blk_summary,
	.dev_summary = blk_dev_summary,
	.destroy = blk_destroy,
};
