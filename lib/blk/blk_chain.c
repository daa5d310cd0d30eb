/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Walking one virtio-blk request chain: every guest-supplied index, length, flag and address is
 * checked before use, and guest memory is read once (the 16-byte header and a DISCARD range are
 * copied; payload never is). Runs on worker lcores; pure apart from guest memory, so the unit
 * tests drive it with a hand-built ring and memory table.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>

#include "blk_internal.h"

struct walk {
	struct rte_vhost_memory *mem;
	uint8_t hdr[sizeof(struct blk_outhdr)];
	unsigned int hdr_len;
	struct iovec *out; /* device-readable data */
	unsigned int nb_out;
	uint64_t out_len;
	struct iovec in[BLK_IOV_MAX]; /* device-writable bytes, status included */
	unsigned int nb_in;
	uint64_t in_len;
	unsigned int data_segs; /* descriptors carrying data, for seg_max */
	bool seen_writable;
	bool broken; /* loop, bad index or flags: the chain cannot be trusted at all */
	bool bad;    /* a buffer outside guest memory, or too many segments: IOERR */
};

/* Append guest buffer [gpa, gpa+len) to @p iov, split where guest memory regions split. */
static bool
add_buffer(struct walk *w, uint64_t gpa, uint64_t len, struct iovec *iov, unsigned int *nb)
{
	uint64_t chunk, vva;

	while (len > 0) {
		chunk = len;
		vva = rte_vhost_va_from_guest_pa(w->mem, gpa, &chunk);
		if (vva == 0 || chunk == 0 || *nb == BLK_IOV_MAX)
			return false;
		iov[*nb].iov_base = (void *)(uintptr_t)vva;
		iov[*nb].iov_len = chunk;
		(*nb)++;
		gpa += chunk;
		len -= chunk;
	}
	return true;
}

/* Copy header bytes out of a readable buffer; @return how many bytes of it were header. */
static uint64_t
take_header(struct walk *w, uint64_t gpa, uint64_t len)
{
	uint64_t want = sizeof(w->hdr) - w->hdr_len, chunk, vva, taken = 0;

	while (want > 0 && len > 0) {
		chunk = RTE_MIN(want, len);
		vva = rte_vhost_va_from_guest_pa(w->mem, gpa, &chunk);
		if (vva == 0 || chunk == 0) {
			w->bad = true;
			return len; /* the rest of this buffer is unusable */
		}
		memcpy(w->hdr + w->hdr_len, (void *)(uintptr_t)vva, chunk);
		w->hdr_len += chunk;
		gpa += chunk;
		len -= chunk;
		want -= chunk;
		taken += chunk;
	}
	return taken;
}

static void
visit(struct walk *w, const struct vring_desc *d)
{
	uint64_t gpa = d->addr, len = d->len, skip;

	if (d->flags & VRING_DESC_F_WRITE) {
		w->seen_writable = true;
		w->in_len += len;
		if (len > BLK_SIZE_MAX + 1 || !add_buffer(w, gpa, len, w->in, &w->nb_in))
			w->bad = true;
		w->data_segs++;
		return;
	}
	if (w->seen_writable) {
		w->broken = true; /* virtio: device-readable descriptors come first */
		return;
	}
	skip = take_header(w, gpa, len);
	if (skip == len)
		return;
	w->data_segs++;
	w->out_len += len - skip;
	if (len - skip > BLK_SIZE_MAX || !add_buffer(w, gpa + skip, len - skip, w->out, &w->nb_out))
		w->bad = true;
}

/* Follow an indirect table: entries link by index inside the table only. */
static void
walk_indirect(struct walk *w, const struct vring_desc *d)
{
	uint64_t len = d->len, n = d->len / sizeof(struct vring_desc), vva;
	const struct vring_desc *table;
	unsigned int visited = 0;
	uint16_t i = 0;

	if (d->len == 0 || d->len % sizeof(struct vring_desc) != 0 || n > BLK_INDIRECT_MAX) {
		w->broken = true;
		return;
	}
	vva = rte_vhost_va_from_guest_pa(w->mem, d->addr, &len);
	if (vva == 0 || len != d->len) {
		w->broken = true; /* the table itself must be in one region */
		return;
	}
	table = (const struct vring_desc *)(uintptr_t)vva;
	for (;;) {
		struct vring_desc e = table[i]; /* one read of guest memory */

		if (++visited > n || (e.flags & VRING_DESC_F_INDIRECT)) {
			w->broken = true; /* a loop, or a nested table */
			return;
		}
		visit(w, &e);
		if (!(e.flags & VRING_DESC_F_NEXT))
			return;
		if (e.next >= n) {
			w->broken = true;
			return;
		}
		i = e.next;
	}
}

static void
walk_chain(struct walk *w, const struct vring_desc *desc, uint16_t size, uint16_t head)
{
	unsigned int visited = 0;
	uint16_t i = head;

	for (;;) {
		struct vring_desc d = desc[i];

		if (++visited > size) {
			w->broken = true; /* longer than the ring: a loop */
			return;
		}
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if ((d.flags & VRING_DESC_F_NEXT) || visited != 1) {
				w->broken = true;
				return;
			}
			walk_indirect(w, &d);
			return;
		}
		visit(w, &d);
		if (w->broken || !(d.flags & VRING_DESC_F_NEXT))
			return;
		if (d.next >= size) {
			w->broken = true;
			return;
		}
		i = d.next;
	}
}

/* Take the status byte: the last device-writable byte. */
static bool
take_status(struct walk *w, struct blk_req *r)
{
	struct iovec *last;

	if (w->nb_in == 0)
		return false;
	last = &w->in[w->nb_in - 1];
	r->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	if (--last->iov_len == 0)
		w->nb_in--;
	w->in_len--;
	r->used_len = 1;
	return true;
}

static bool
in_range(const struct blk_limits *lim, uint64_t sector, uint64_t bytes, uint64_t *offset)
{
	if (sector > lim->capacity / BLK_SECTOR)
		return false;
	*offset = sector * BLK_SECTOR;
	return bytes <= lim->capacity - *offset;
}

static int
parse_dwz(struct walk *w, const struct blk_limits *lim, struct blk_req *r)
{
	struct blk_dwz_range range;
	bool discard = r->type == BLK_T_DISCARD;
	uint8_t *p = (uint8_t *)&range;
	unsigned int i;
	size_t got = 0;

	if (lim->readonly)
		return BLK_S_IOERR;
	if (discard ? !lim->discard : !lim->write_zeroes)
		return BLK_S_UNSUPP;
	if (w->out_len != sizeof(range) * BLK_DWZ_SEG_MAX)
		return BLK_S_IOERR; /* one range per request (max_discard_seg = 1) */
	for (i = 0; i < w->nb_out && got < sizeof(range); i++) {
		size_t n = RTE_MIN(w->out[i].iov_len, sizeof(range) - got);

		memcpy(p + got, w->out[i].iov_base, n);
		got += n;
	}
	if ((discard && range.flags != 0) || (!discard && (range.flags & ~BLK_WZ_F_UNMAP)))
		return BLK_S_UNSUPP;
	r->len = (uint64_t)range.num_sectors * BLK_SECTOR;
	if (range.num_sectors == 0 || range.num_sectors > BLK_DWZ_SECTORS_MAX ||
		!in_range(lim, range.sector, r->len, &r->offset))
		return BLK_S_IOERR;
	if (discard || ((range.flags & BLK_WZ_F_UNMAP) && lim->discard))
		r->falloc_mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	else
		r->falloc_mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	return BLK_S_OK;
}

int
blk_parse(const struct vring_desc *desc, uint16_t size, struct rte_vhost_memory *mem,
	const struct blk_limits *lim, uint16_t head, struct blk_req *r)
{
	struct walk w = {.mem = mem, .out = r->iov};
	struct blk_outhdr hdr;

	r->head = head;
	r->status = NULL;
	r->used_len = 0;
	r->len = 0;
	r->niov = 0;
	walk_chain(&w, desc, size, head);
	if (w.broken || !take_status(&w, r))
		return BLK_S_IOERR;
	if (w.bad || w.hdr_len < sizeof(hdr) || w.data_segs > BLK_SEG_MAX + 1)
		return BLK_S_IOERR;
	memcpy(&hdr, w.hdr, sizeof(hdr));
	r->type = hdr.type;

	switch (hdr.type) {
	case BLK_T_IN:
		if (w.in_len == 0 || w.in_len % BLK_SECTOR != 0 || w.nb_out != 0 ||
			!in_range(lim, hdr.sector, w.in_len, &r->offset))
			return BLK_S_IOERR;
		memcpy(r->iov, w.in, w.nb_in * sizeof(w.in[0]));
		r->niov = w.nb_in;
		r->len = w.in_len;
		r->used_len += (uint32_t)w.in_len;
		return BLK_S_OK;
	case BLK_T_OUT:
		if (lim->readonly)
			return BLK_S_IOERR;
		if (w.out_len == 0 || w.out_len % BLK_SECTOR != 0 || w.nb_in != 0 ||
			!in_range(lim, hdr.sector, w.out_len, &r->offset))
			return BLK_S_IOERR;
		r->niov = w.nb_out;
		r->len = w.out_len;
		return BLK_S_OK;
	case BLK_T_FLUSH:
		return BLK_S_OK;
	case BLK_T_GET_ID:
		if (w.in_len == 0)
			return BLK_S_IOERR;
		memcpy(r->iov, w.in, w.nb_in * sizeof(w.in[0]));
		r->niov = w.nb_in;
		r->len = RTE_MIN(w.in_len, (uint64_t)BLK_ID_BYTES);
		r->used_len += (uint32_t)r->len;
		return BLK_S_OK;
	case BLK_T_DISCARD:
	case BLK_T_WRITE_ZEROES:
		return parse_dwz(&w, lim, r);
	default:
		return BLK_S_UNSUPP;
	}
}
