/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Runs on worker lcores: take requests from a split virtqueue, execute them on the backing
 * with io_uring (readv/writev straight on guest memory, fsync, fallocate), and complete them
 * into the used ring. No locks and no allocation; the syscalls are the I/O itself (one
 * io_uring_enter per poll that queued work) and one eventfd write per poll that completed work
 * when the guest wants interrupts.
 *
 * Completion follows vhost-user's inflight protocol (vhost-user.rst, "Inflight I/O tracking"),
 * so a restarted vhostd can tell which requests were still in flight: mark the head inflight
 * when taken; on completion record it as last_inflight_io, publish the used entry, then clear it.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <rte_cycles.h>

#include "blk_internal.h"

static void
complete(struct blk_queue *q, struct blk_req *r, uint8_t status)
{
	struct vring_used *used = q->vring.used;
	uint16_t idx = q->last_used_idx;

	if (r->status != NULL)
		*r->status = status;
	else
		r->used_len = 0;
	used->ring[idx % q->size].id = r->head;
	used->ring[idx % q->size].len = r->used_len;
	rte_vhost_set_last_inflight_io_split(q->vid, q->vring_idx, r->head);
	/* The entry, and the data and status it points at, before the index the guest reads. */
	__atomic_store_n(&used->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
	q->last_used_idx = idx + 1;
	rte_vhost_clr_inflight_desc_split(q->vid, q->vring_idx, q->last_used_idx, r->head);
	r->busy = false;
	q->need_call = true;
	blk_ctr_add(&q->st.completed, 1);
	if (status == BLK_S_IOERR)
		blk_ctr_add(&q->st.io_errors, 1);
	else if (status == BLK_S_UNSUPP)
		blk_ctr_add(&q->st.unsupported, 1);
}

static void
count_op(struct blk_queue *q, const struct blk_req *r)
{
	switch (r->type) {
	case BLK_T_IN:
		blk_ctr_add(&q->st.read_ops, 1);
		blk_ctr_add(&q->st.read_bytes, r->len);
		break;
	case BLK_T_OUT:
		blk_ctr_add(&q->st.write_ops, 1);
		blk_ctr_add(&q->st.write_bytes, r->len);
		break;
	case BLK_T_FLUSH:
		blk_ctr_add(&q->st.flush_ops, 1);
		break;
	case BLK_T_DISCARD:
		blk_ctr_add(&q->st.discard_ops, 1);
		break;
	case BLK_T_WRITE_ZEROES:
		blk_ctr_add(&q->st.write_zeroes_ops, 1);
		break;
	default:
		blk_ctr_add(&q->st.get_id_ops, 1);
		break;
	}
}

/* @return the status a finished backing operation gives the guest. */
static uint8_t
result_status(const struct blk_req *r, long res)
{
	if (res < 0)
		return BLK_S_IOERR;
	if ((r->type == BLK_T_IN || r->type == BLK_T_OUT) && (uint64_t)res != r->len)
		return BLK_S_IOERR; /* short: the backing shrank under us */
	return BLK_S_OK;
}

/* GET_ID: the serial, NUL-padded, into the data-in buffers (at most 20 bytes). */
static void
write_id(struct blk_queue *q, struct blk_req *r)
{
	char id[BLK_ID_BYTES] = {0};
	uint64_t left = r->len, off = 0, n;
	unsigned int i;

	/* virtio: up to 20 bytes, NUL-terminated only when shorter. */
	memcpy(id, q->serial, RTE_MIN(strlen(q->serial), sizeof(id)));
	for (i = 0; i < r->niov && left > 0; i++) {
		n = RTE_MIN(left, (uint64_t)r->iov[i].iov_len);
		memcpy(r->iov[i].iov_base, id + off, n);
		off += n;
		left -= n;
	}
}

/* Without io_uring: do it now, synchronously, on this worker. */
static long
execute_sync(struct blk_queue *q, struct blk_req *r)
{
	switch (r->type) {
	case BLK_T_IN:
		return preadv(q->fd, r->iov, (int)r->niov, (off_t)r->offset);
	case BLK_T_OUT:
		return pwritev(q->fd, r->iov, (int)r->niov, (off_t)r->offset);
	case BLK_T_FLUSH:
		return fdatasync(q->fd) < 0 ? -errno : 0;
	default:
		return fallocate(q->fd, r->falloc_mode, (off_t)r->offset, (off_t)r->len) < 0
			       ? -errno
			       : 0;
	}
}

/*
 * Writes into the page cache take a few microseconds when done in place, but io_uring hands
 * buffered writes to io-wq threads here (ext4 has no non-blocking buffered write), which costs
 * tens of microseconds and a thread hop. So a write runs in place while that stays fast. One
 * that took longer than BLK_INLINE_WRITE_MAX_US (dirty-page throttling, a journal commit, a
 * slow device) sends this queue's writes to io_uring for BLK_ASYNC_WRITES_FACTOR times as long
 * as it took: a passing hiccup of a millisecond costs tens of milliseconds of the slower path,
 * not a second of it (measured: 4 KiB random writes at queue depth 32, p99 from 4.8 ms down to
 * under 1 ms), while a disk that stays slow holds the worker, and the other devices on it, for
 * one write at a time and at most about 1/64 of its time.
 */
static bool
write_inline(struct blk_queue *q, struct blk_req *r)
{
	uint64_t start, took;
	long res;

	if (!q->use_uring)
		return false; /* execute_sync() does it anyway */
	start = rte_rdtsc();
	if (start < q->async_writes_until)
		return false;
	res = pwritev(q->fd, r->iov, (int)r->niov, (off_t)r->offset);
	took = rte_rdtsc() - start;
	if (took > q->inline_write_max_cycles) {
		q->async_writes_until =
			start + took +
			RTE_MIN(took * BLK_ASYNC_WRITES_FACTOR, q->async_writes_max_cycles);
		blk_ctr_add(&q->st.slow_inline_writes, 1);
	}
	complete(q, r, result_status(r, res < 0 ? -errno : res));
	return true;
}

/* @return true when queued on io_uring (completed later), false when already completed. */
static bool
submit(struct blk_queue *q, struct blk_req *r)
{
	struct io_uring_sqe *sqe;

	count_op(q, r);
	if (r->type == BLK_T_GET_ID) {
		write_id(q, r);
		complete(q, r, BLK_S_OK);
		return false;
	}
	if (r->type == BLK_T_OUT && write_inline(q, r))
		return false;
	if (!q->use_uring || (sqe = io_uring_get_sqe(&q->ring)) == NULL) {
		complete(q, r, result_status(r, execute_sync(q, r)));
		return false;
	}
	switch (r->type) {
	case BLK_T_IN:
		io_uring_prep_readv(sqe, q->fd, r->iov, r->niov, r->offset);
		break;
	case BLK_T_OUT:
		io_uring_prep_writev(sqe, q->fd, r->iov, r->niov, r->offset);
		break;
	case BLK_T_FLUSH:
		io_uring_prep_fsync(sqe, q->fd, IORING_FSYNC_DATASYNC);
		break;
	default:
		io_uring_prep_fallocate(sqe, q->fd, r->falloc_mode, r->offset, r->len);
		break;
	}
	io_uring_sqe_set_data64(sqe, r->head);
	q->to_submit++;
	blk_ctr_add(&q->st.inflight, 1);
	return true;
}

/* Take descriptor chain @p head from the guest and start it. */
static void
take(struct blk_queue *q, uint16_t head)
{
	struct blk_req *r;
	int status;

	if (head >= q->size || q->reqs[head].busy) {
		/* Not a request we can name in the used ring: count it and move on. */
		blk_ctr_add(&q->st.bad_requests, 1);
		return;
	}
	r = &q->reqs[head];
	r->busy = true;
	blk_ctr_add(&q->st.requests, 1);
	rte_vhost_set_inflight_desc_split(q->vid, q->vring_idx, head);
	status = blk_parse(q->vring.desc, q->size, q->mem, &q->lim, head, r);
	if (status != BLK_S_OK) {
		blk_ctr_add(&q->st.bad_requests, 1);
		complete(q, r, (uint8_t)status);
		return;
	}
	submit(q, r);
}

/* Complete the request an io_uring completion belongs to. */
static void
finish(struct blk_queue *q, struct io_uring_cqe *cqe)
{
	uint64_t head = io_uring_cqe_get_data64(cqe);
	struct blk_req *r;

	if (head < q->size && q->reqs[head].busy) {
		r = &q->reqs[head];
		complete(q, r, result_status(r, cqe->res));
		blk_ctr_add(&q->st.inflight, (uint64_t)-1);
	}
	io_uring_cqe_seen(&q->ring, cqe);
}

static unsigned int
reap(struct blk_queue *q)
{
	struct io_uring_cqe *cqe;
	unsigned int n = 0;

	while (io_uring_peek_cqe(&q->ring, &cqe) == 0) {
		finish(q, cqe);
		n++;
	}
	return n;
}

/* Interrupt the guest unless it asked not to be (we do not offer EVENT_IDX). */
static void
notify(struct blk_queue *q)
{
	q->need_call = false;
	if (q->vring.callfd < 0 || (__atomic_load_n(&q->vring.avail->flags, __ATOMIC_ACQUIRE) &
					   VRING_AVAIL_F_NO_INTERRUPT))
		return;
	eventfd_write(q->vring.callfd, 1);
}

unsigned int
blk_queue_poll(void *arg)
{
	struct blk_queue *q = arg;
	unsigned int n = 0, budget = q->size;
	uint16_t avail_idx;

	if (unlikely(blk_dev_paused(q->dev)))
		return 0;
	if (q->use_uring)
		n += reap(q);
	/* Requests a previous vhostd had taken but not completed come first, oldest first. */
	while (q->resubmit_pos < q->nb_resubmit) {
		take(q, q->resubmit[q->resubmit_pos++]);
		blk_ctr_add(&q->st.resubmitted, 1);
		n++;
	}
	avail_idx = __atomic_load_n(&q->vring.avail->idx, __ATOMIC_ACQUIRE);
	/* At most one ring's worth per poll, whatever index a hostile guest publishes. */
	while (q->last_avail_idx != avail_idx && budget-- > 0) {
		take(q, q->vring.avail->ring[q->last_avail_idx % q->size]);
		q->last_avail_idx++;
		n++;
		if (q->to_submit >= q->size / 2)
			break; /* submit what we have; the rest next poll */
	}
	if (q->to_submit > 0) {
		io_uring_submit(&q->ring);
		q->to_submit = 0;
	}
	if (q->need_call)
		notify(q);
	return n;
}

/* Control side, with no worker polling @p q: finish everything in flight. */
void
blk_queue_drain(struct blk_queue *q)
{
	struct io_uring_cqe *cqe;

	if (q->to_submit > 0) {
		io_uring_submit(&q->ring);
		q->to_submit = 0;
	}
	while (q->use_uring && __atomic_load_n(&q->st.inflight, __ATOMIC_RELAXED) > 0) {
		if (io_uring_wait_cqe(&q->ring, &cqe) != 0)
			break;
		finish(q, cqe);
	}
	if (q->need_call)
		notify(q);
}
