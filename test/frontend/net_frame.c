/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test frames: build, verify every byte, track sequence numbers per stream.
 */
#include <string.h>

#include "net.h"

static uint32_t
fhdr_check(const struct net_fhdr *h)
{
	/* A cheap multiplicative mix over every header field before the check. */
	uint64_t x = h->seq * 0x9E3779B97F4A7C15ull;

	x ^= h->ts_ns * 0xC2B2AE3D27D4EB4Full;
	x ^= (((uint64_t)h->stream << 32) | ((uint64_t)h->len << 16) | h->queue) *
	     0x165667B19E3779F9ull;
	x ^= (uint64_t)h->magic;
	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ull;
	x ^= x >> 32;
	return (uint32_t)x;
}

void
net_frame_build(uint8_t *f, uint32_t len, const uint8_t dst[6], const uint8_t src[6],
	uint32_t stream, uint16_t queue, uint64_t seq, uint64_t ts_ns)
{
	struct net_fhdr h = {
		.magic = NET_MAGIC,
		.stream = stream,
		.seq = seq,
		.ts_ns = ts_ns,
		.len = (uint16_t)len,
		.queue = queue,
	};
	uint8_t seed;

	h.check = fhdr_check(&h);
	seed = (uint8_t)h.check;
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = NET_ETHERTYPE >> 8;
	f[13] = NET_ETHERTYPE & 0xff;
	memcpy(f + NET_FHDR_OFF, &h, sizeof(h));
	for (uint32_t i = NET_PATTERN_OFF; i < len; i++)
		f[i] = (uint8_t)(seed + i);
}

enum net_verdict
net_frame_verify(const uint8_t *f, uint32_t len, struct net_fhdr *h)
{
	uint8_t seed, diff = 0;

	if (len < NET_PATTERN_OFF || f[12] != (NET_ETHERTYPE >> 8) ||
		f[13] != (NET_ETHERTYPE & 0xff))
		return NET_FOREIGN;
	memcpy(h, f + NET_FHDR_OFF, sizeof(*h));
	if (h->magic != NET_MAGIC)
		return NET_FOREIGN;
	if (h->check != fhdr_check(h) || h->len != len)
		return NET_BAD;
	seed = (uint8_t)h->check;
	for (uint32_t i = NET_PATTERN_OFF; i < len; i++)
		diff |= (uint8_t)(f[i] ^ (uint8_t)(seed + i));
	return diff == 0 ? NET_OK : NET_BAD;
}

void
net_streams_record(struct net_streams *t, const struct net_fhdr *h)
{
	unsigned int slot = (h->stream * 31u + h->queue) % NET_MAX_STREAMS;
	struct net_stream *s = NULL;

	for (unsigned int n = 0; n < NET_MAX_STREAMS; n++) {
		struct net_stream *c = &t->s[(slot + n) % NET_MAX_STREAMS];

		if (!c->used) {
			c->used = true;
			c->stream = h->stream;
			c->queue = h->queue;
			s = c;
			break;
		}
		if (c->stream == h->stream && c->queue == h->queue) {
			s = c;
			break;
		}
	}
	if (s == NULL) {
		t->overflow++;
		return;
	}
	s->rx++;
	if (h->seq > s->next_seq)
		s->gaps += h->seq - s->next_seq;
	else if (h->seq < s->next_seq)
		s->reorders++;
	if (h->seq >= s->next_seq)
		s->next_seq = h->seq + 1;
}
