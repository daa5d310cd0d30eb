/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * RPC methods of the device module: each is a params table, a handler with one error exit, and
 * one registration line.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "device.h"
#include "device_internal.h"
#include "dp.h"
#include "rpc.h"

struct name_params {
	char name[DEVICE_NAME_MAX + 1];
};

struct pair_params {
	char a[DEVICE_NAME_MAX + 1];
	char b[DEVICE_NAME_MAX + 1];
};

static const struct rpc_param name_required[] = {
	{.name = "name",
		.type = RPC_PARAM_STRING,
		.required = true,
		.min = 1,
		.max = DEVICE_NAME_MAX,
		.offset = offsetof(struct name_params, name)},
	{0},
};

static const struct rpc_param name_optional[] = {
	{.name = "name",
		.type = RPC_PARAM_STRING,
		.min = 1,
		.max = DEVICE_NAME_MAX,
		.offset = offsetof(struct name_params, name)},
	{0},
};

static const struct rpc_param pair_spec[] = {
	{.name = "a",
		.type = RPC_PARAM_STRING,
		.required = true,
		.min = 1,
		.max = DEVICE_NAME_MAX,
		.offset = offsetof(struct pair_params, a)},
	{.name = "b",
		.type = RPC_PARAM_STRING,
		.required = true,
		.min = 1,
		.max = DEVICE_NAME_MAX,
		.offset = offsetof(struct pair_params, b)},
	{0},
};

static const struct rpc_param no_params[] = {{0}};

/* Decode by @p spec; on a problem, the first one becomes the reply's error. */
static int
decode(json_t *params, const struct rpc_param *spec, void *out, struct base_error *err)
{
	struct base_errors errs;

	base_errors_init(&errs);
	if (rpc_params_decode(params, spec, NULL, out, &errs) == 0)
		return 0;
	*err = errs.list[0];
	return -err->err;
}

static int
rpc_device_attach(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	struct base_errors errs;
	int rc;

	(void)ctx;
	base_errors_init(&errs);
	rc = device_attach(params, false, result, &errs);
	if (rc < 0)
		*err = errs.list[0];
	return rc;
}

static int
rpc_device_validate(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	struct base_errors errs;
	json_t *list, *dummy = NULL;
	unsigned int i;

	(void)ctx;
	(void)err;
	base_errors_init(&errs);
	device_attach(params, true, &dummy, &errs);
	list = json_array();
	for (i = 0; i < errs.count; i++)
		json_array_append_new(list,
			json_pack("{s:s, s:s, s:s}", "errno", base_errno_name(errs.list[i].err),
				"field", errs.list[i].field, "reason", errs.list[i].reason));
	*result = json_pack("{s:b, s:o, s:i}", "valid", errs.count == 0, "errors", list,
		"more_errors", (json_int_t)errs.dropped);
	return 0;
}

static int
rpc_device_detach(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	struct name_params p = {.name = ""};
	int rc;

	(void)ctx;
	rc = decode(params, name_required, &p, err);
	if (rc == 0)
		rc = device_detach(p.name, err);
	if (rc == 0)
		*result = json_true();
	return rc;
}

static int
rpc_device_get(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	struct name_params p = {.name = ""};
	int rc;

	(void)ctx;
	rc = decode(params, name_required, &p, err);
	if (rc == 0) {
		*result = device_get(p.name, err);
		if (*result == NULL)
			rc = -err->err;
	}
	return rc;
}

static int
rpc_device_list(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	int rc;

	(void)ctx;
	rc = decode(params, no_params, NULL, err);
	if (rc == 0)
		*result = device_list();
	return rc;
}

static int
rpc_xconnect_create(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	struct pair_params p;

	memset(&p, 0, sizeof(p));
	int rc;

	(void)ctx;
	rc = decode(params, pair_spec, &p, err);
	if (rc == 0)
		rc = device_xconnect_create(p.a, p.b, err);
	if (rc == 0)
		*result = json_true();
	return rc;
}

static int
rpc_xconnect_delete(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	struct pair_params p;

	memset(&p, 0, sizeof(p));
	int rc;

	(void)ctx;
	rc = decode(params, pair_spec, &p, err);
	if (rc == 0)
		rc = device_xconnect_delete(p.a, p.b, err);
	if (rc == 0)
		*result = json_true();
	return rc;
}

static int
rpc_stats_get(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	struct name_params p = {.name = ""};
	int rc;

	(void)ctx;
	rc = decode(params, name_optional, &p, err);
	if (rc == 0) {
		*result = device_stats(p.name[0] ? p.name : NULL, err);
		if (*result == NULL)
			rc = -err->err;
	}
	return rc;
}

static int
rpc_stats_reset(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	struct name_params p = {.name = ""};
	int rc;

	(void)ctx;
	rc = decode(params, name_optional, &p, err);
	if (rc == 0)
		rc = device_stats_reset(p.name[0] ? p.name : NULL, err);
	if (rc == 0)
		*result = json_true();
	return rc;
}

static int
rpc_worker_list(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	struct dp_worker_info w;
	json_t *list;
	unsigned int i;
	int rc;

	(void)ctx;
	rc = decode(params, no_params, NULL, err);
	if (rc < 0)
		return rc;
	list = json_array();
	device_lock(); /* dp's task counts are kept under the same lock */
	for (i = 0; dp_worker_get(i, &w) == 0; i++)
		json_array_append_new(list,
			json_pack("{s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:f}", "id", (json_int_t)i,
				"lcore", (json_int_t)w.lcore, "queues", (json_int_t)w.tasks,
				"busy_cycles", (json_int_t)w.busy_cycles, "total_cycles",
				(json_int_t)w.total_cycles, "packets", (json_int_t)w.packets,
				"polls", (json_int_t)w.polls, "busy_percent",
				w.total_cycles
					? 100.0 * (double)w.busy_cycles / (double)w.total_cycles
					: 0.0));
	device_unlock();
	*result = list;
	return 0;
}

int
device_rpc_register(struct rpc_registry *reg)
{
	static const struct {
		const char *name;
		rpc_handler_fn fn;
	} methods[] = {
		{"device_attach", rpc_device_attach},
		{"device_validate", rpc_device_validate},
		{"device_detach", rpc_device_detach},
		{"device_get", rpc_device_get},
		{"device_list", rpc_device_list},
		{"xconnect_create", rpc_xconnect_create},
		{"xconnect_delete", rpc_xconnect_delete},
		{"stats_get", rpc_stats_get},
		{"stats_reset", rpc_stats_reset},
		{"worker_list", rpc_worker_list},
	};
	size_t i;
	int rc;

	for (i = 0; i < RTE_DIM(methods); i++) {
		rc = rpc_register(reg, methods[i].name, methods[i].fn, NULL);
		if (rc < 0)
			return rc;
	}
	return 0;
}
