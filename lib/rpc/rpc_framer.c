/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Requests arrive as complete JSON values one after another on a stream, with no length prefix
 * (design section 4). jansson parses the first value of a buffer and tells how many bytes it took
 * (JSON_DISABLE_EOF_CHECK); a value cut short by the end of the buffer is told apart from a
 * malformed one by where the error sits: at the very end means "wait for more bytes".
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

struct rpc_framer {
	char *buf;
	size_t start; /* first byte not yet consumed */
	size_t end;   /* one past the last byte received */
	size_t cap;
	size_t max;
};

struct rpc_framer *
rpc_framer_create(size_t max_bytes)
{
	struct rpc_framer *fr = calloc(1, sizeof(*fr));

	if (fr == NULL)
		return NULL;
	fr->max = max_bytes;
	return fr;
}

void
rpc_framer_destroy(struct rpc_framer *fr)
{
	if (fr == NULL)
		return;
	free(fr->buf);
	free(fr);
}

static void
compact(struct rpc_framer *fr)
{
	if (fr->start == 0)
		return;
	memmove(fr->buf, fr->buf + fr->start, fr->end - fr->start);
	fr->end -= fr->start;
	fr->start = 0;
}

int
rpc_framer_feed(struct rpc_framer *fr, const void *data, size_t len)
{
	size_t need;

	compact(fr);
	need = fr->end + len;
	if (need > fr->max)
		return -EMSGSIZE;
	if (need > fr->cap) {
		size_t cap = fr->cap ? fr->cap : 4096;
		char *nb;

		while (cap < need)
			cap *= 2;
		if (cap > fr->max)
			cap = fr->max;
		nb = realloc(fr->buf, cap);
		if (nb == NULL)
			return -ENOMEM;
		fr->buf = nb;
		fr->cap = cap;
	}
	memcpy(fr->buf + fr->end, data, len);
	fr->end += len;
	return 0;
}

static void
skip_space(struct rpc_framer *fr)
{
	while (fr->start < fr->end && isspace((unsigned char)fr->buf[fr->start]))
		fr->start++;
}

bool
rpc_framer_pending(const struct rpc_framer *fr)
{
	size_t i;

	for (i = fr->start; i < fr->end; i++)
		if (!isspace((unsigned char)fr->buf[i]))
			return true;
	return false;
}

int
rpc_framer_next(struct rpc_framer *fr, json_t **value, struct base_error *err)
{
	size_t avail;
	json_error_t jerr;
	json_t *v;

	*value = NULL;
	skip_space(fr);
	avail = fr->end - fr->start;
	if (avail == 0)
		return 0;

	v = json_loadb(fr->buf + fr->start, avail, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
	if (v == NULL) {
		if (json_error_code(&jerr) == json_error_premature_end_of_input ||
			(size_t)jerr.position >= avail)
			return 0; /* cut short by the end of what arrived so far */
		base_error_set(err, EBADMSG, NULL, "malformed JSON at byte %zu: %s",
			(size_t)jerr.position, jerr.text);
		fr->start = fr->end = 0;
		return -EBADMSG;
	}
	/* A bare number at the very end may still be growing ("12" then "34"). */
	if (json_is_number(v) && (size_t)jerr.position >= avail) {
		json_decref(v);
		return 0;
	}
	fr->start += jerr.position;
	*value = v;
	return 1;
}
