/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Minimal JSON line writer: every event is one object on one stdout line.
 * Keys and string values are escaped; numbers are written as JSON numbers,
 * 64-bit feature masks as "0x..." strings.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fe.h"

static void
put(struct fe_json *j, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (j->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(j->buf + j->len, sizeof(j->buf) - j->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(j->buf) - j->len) {
		j->overflow = true;
		return;
	}
	j->len += (size_t)n;
}

static void
put_escaped(struct fe_json *j, const char *s)
{
	put(j, "\"");
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			put(j, "\\%c", c);
		else if (c < 0x20)
			put(j, "\\u%04x", c);
		else
			put(j, "%c", c);
	}
	put(j, "\"");
}

static void
key(struct fe_json *j, const char *k)
{
	if (!j->first[j->depth])
		put(j, ",");
	j->first[j->depth] = false;
	if (k != NULL) {
		put_escaped(j, k);
		put(j, ":");
	}
}

void
fe_json_begin(struct fe_json *j, const char *event)
{
	j->len = 0;
	j->depth = 0;
	j->overflow = false;
	j->first[0] = true;
	put(j, "{");
	fe_json_str(j, "event", event);
}

void
fe_json_str(struct fe_json *j, const char *k, const char *val)
{
	key(j, k);
	put_escaped(j, val != NULL ? val : "");
}

void
fe_json_u64(struct fe_json *j, const char *k, uint64_t val)
{
	key(j, k);
	put(j, "%" PRIu64, val);
}

void
fe_json_hex(struct fe_json *j, const char *k, uint64_t val)
{
	key(j, k);
	put(j, "\"0x%" PRIx64 "\"", val);
}

void
fe_json_dbl(struct fe_json *j, const char *k, double val)
{
	key(j, k);
	if (isfinite(val))
		put(j, "%.6g", val);
	else
		put(j, "null");
}

void
fe_json_bool(struct fe_json *j, const char *k, bool val)
{
	key(j, k);
	put(j, val ? "true" : "false");
}

void
fe_json_null(struct fe_json *j, const char *k)
{
	key(j, k);
	put(j, "null");
}

void
fe_json_open(struct fe_json *j, const char *k, char bracket)
{
	key(j, k);
	put(j, "%c", bracket);
	if (j->depth + 1 < FE_JSON_DEPTH)
		j->depth++;
	else
		j->overflow = true;
	j->first[j->depth] = true;
}

void
fe_json_close(struct fe_json *j, char bracket)
{
	put(j, "%c", bracket);
	if (j->depth > 0)
		j->depth--;
}

void
fe_json_end(struct fe_json *j)
{
	while (j->depth > 0)
		fe_json_close(j, '}');
	put(j, "}");
	/* Two threads may print (blk events, progress): keep lines whole. */
	flockfile(stdout);
	if (j->overflow) {
		/* Never print half an object: the reader parses every line. */
		fputs("{\"event\":\"error\",\"reason\":\"json line overflow\"}\n", stdout);
	} else {
		fwrite(j->buf, 1, j->len, stdout);
		fputc('\n', stdout);
	}
	fflush(stdout);
	funlockfile(stdout);
}
