/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhostctl [-s SOCK] [-t MS] METHOD [JSON | key=value ...]
 *
 * Prints the result as JSON on stdout and exits 0, or prints the error object on stderr and
 * exits 1. Exit 2: usage or connection problem (no reply at all).
 *
 * key=value: the value is read as JSON when it is a number, true/false/null, an object, an
 * array or a quoted string, and as a plain string otherwise; key:=value forces JSON. A dotted
 * key builds nested objects: policy.iommu=platform gives {"policy": {"iommu": "platform"}}.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rpc.h"

#define DEFAULT_RPC_SOCKET "./run/vhostd.sock"

static void
usage(FILE *f)
{
	fprintf(f, "usage: vhostctl [-s RPC_SOCKET] [-t TIMEOUT_MS] METHOD [JSON | key=value ...]\n"
		   "  e.g. vhostctl device_attach name=vm1 kind=net socket=/tmp/vm1.sock\n"
		   "       vhostctl device_attach '{\"name\":\"vm1\",\"kind\":\"net\",...}'\n"
		   "       vhostctl rpc_get_methods\n");
}

/* Set @p value at dotted @p key inside @p obj, making the objects on the way. */
static int
set_dotted(json_t *obj, char *key, json_t *value)
{
	char *dot;
	json_t *sub;

	while ((dot = strchr(key, '.')) != NULL) {
		*dot = '\0';
		sub = json_object_get(obj, key);
		if (sub == NULL) {
			sub = json_object();
			json_object_set_new(obj, key, sub);
		} else if (!json_is_object(sub)) {
			json_decref(value);
			return -EINVAL;
		}
		obj = sub;
		key = dot + 1;
	}
	return json_object_set_new(obj, key, value) == 0 ? 0 : -EINVAL;
}

static json_t *
value_of(const char *text, bool force_json)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);

	if (v != NULL || force_json)
		return v;
	return json_string(text);
}

static json_t *
build_params(int argc, char **argv)
{
	json_t *params, *v;
	char *arg, *eq;
	bool raw;
	int i;

	if (argc == 1 && argv[0][0] == '{')
		return json_loads(argv[0], 0, NULL);
	params = json_object();
	for (i = 0; i < argc; i++) {
		arg = strdup(argv[i]);
		eq = strchr(arg, '=');
		if (eq == NULL || eq == arg) {
			fprintf(stderr, "vhostctl: '%s' is not key=value\n", argv[i]);
			goto fail;
		}
		raw = eq[-1] == ':';
		if (raw)
			eq[-1] = '\0';
		*eq = '\0';
		v = value_of(eq + 1, raw);
		if (v == NULL || set_dotted(params, arg, v) < 0) {
			fprintf(stderr, "vhostctl: bad value in '%s'\n", argv[i]);
			goto fail;
		}
		free(arg);
	}
	return params;
fail:
	free(arg);
	json_decref(params);
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *sock = DEFAULT_RPC_SOCKET;
	json_t *params, *req, *resp, *out;
	int timeout_ms = 30000, c, fd, rc;

	while ((c = getopt(argc, argv, "+s:t:h")) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 't':
			timeout_ms = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	params = build_params(argc - optind - 1, argv + optind + 1);
	if (params == NULL) {
		fprintf(stderr, "vhostctl: params must be one JSON object or key=value pairs\n");
		return 2;
	}
	req = json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", 1, "method", argv[optind],
		"params", params);
	fd = rpc_client_connect(sock);
	if (fd < 0) {
		fprintf(stderr, "vhostctl: cannot connect to %s: %s\n", sock, strerror(-fd));
		json_decref(req);
		return 2;
	}
	rc = rpc_client_call(fd, req, timeout_ms, &resp);
	close(fd);
	json_decref(req);
	if (rc < 0) {
		fprintf(stderr, "vhostctl: no reply from %s: %s\n", sock, strerror(-rc));
		return 2;
	}
	out = json_object_get(resp, "error");
	if (out != NULL) {
		json_dumpf(out, stderr, JSON_INDENT(2));
		fputc('\n', stderr);
		json_decref(resp);
		return 1;
	}
	json_dumpf(json_object_get(resp, "result"), stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	fputc('\n', stdout);
	json_decref(resp);
	return 0;
}
