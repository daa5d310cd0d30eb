/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Method registry and JSON-RPC 2.0 dispatch. The checks every request needs (version, id,
 * method, params shape) are made here once; handlers see a params object and return 0 or
 * -errno with a filled struct base_error, from which the one error format is built.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

struct rpc_method {
	char *name;
	rpc_handler_fn handler;
	void *ctx;
};

struct rpc_registry {
	struct rpc_method *methods;
	size_t count;
	size_t cap;
};

struct rpc_registry *
rpc_registry_create(void)
{
	return calloc(1, sizeof(struct rpc_registry));
}

void
rpc_registry_destroy(struct rpc_registry *reg)
{
	size_t i;

	if (reg == NULL)
		return;
	for (i = 0; i < reg->count; i++)
		free(reg->methods[i].name);
	free(reg->methods);
	free(reg);
}

static const struct rpc_method *
find_method(const struct rpc_registry *reg, const char *name)
{
	size_t i;

	for (i = 0; i < reg->count; i++)
		if (strcmp(reg->methods[i].name, name) == 0)
			return &reg->methods[i];
	return NULL;
}

int
rpc_register(struct rpc_registry *reg, const char *name, rpc_handler_fn handler, void *ctx)
{
	struct rpc_method *m;

	if (find_method(reg, name) != NULL)
		return -EEXIST;
	if (reg->count == reg->cap) {
		size_t cap = reg->cap ? reg->cap * 2 : 32;

		m = realloc(reg->methods, cap * sizeof(*m));
		if (m == NULL)
			return -ENOMEM;
		reg->methods = m;
		reg->cap = cap;
	}
	m = &reg->methods[reg->count];
	m->name = strdup(name);
	if (m->name == NULL)
		return -ENOMEM;
	m->handler = handler;
	m->ctx = ctx;
	reg->count++;
	return 0;
}

json_t *
rpc_method_names(const struct rpc_registry *reg)
{
	json_t *names = json_array();
	size_t i;

	for (i = 0; names != NULL && i < reg->count; i++)
		json_array_append_new(names, json_string(reg->methods[i].name));
	return names;
}

int
rpc_code_of_errno(int err)
{
	switch (err) {
	case EINVAL:
	case ERANGE:
	case ENAMETOOLONG:
		return RPC_INVALID_PARAMS;
	case ENOENT:
	case ENODEV:
		return RPC_NOT_FOUND;
	case EEXIST:
		return RPC_EXISTS;
	case EBUSY:
	case EADDRINUSE:
		return RPC_BUSY;
	case EPERM:
	case EACCES:
	case EROFS:
		return RPC_REFUSED;
	case ENOSPC:
	case E2BIG:
	case EMFILE:
		return RPC_LIMIT;
	case ENOTSUP:
		return RPC_NOT_SUPPORTED;
	case ENOMEM:
		return RPC_INTERNAL_ERROR;
	default:
		return RPC_SERVER_ERROR;
	}
}

static const char *
message_of_code(int code)
{
	switch (code) {
	case RPC_PARSE_ERROR:
		return "Parse error";
	case RPC_INVALID_REQUEST:
		return "Invalid Request";
	case RPC_METHOD_NOT_FOUND:
		return "Method not found";
	case RPC_INVALID_PARAMS:
		return "Invalid params";
	case RPC_INTERNAL_ERROR:
		return "Internal error";
	case RPC_NOT_FOUND:
		return "Not found";
	case RPC_EXISTS:
		return "Already exists";
	case RPC_BUSY:
		return "Busy";
	case RPC_REFUSED:
		return "Refused";
	case RPC_LIMIT:
		return "Limit reached";
	case RPC_NOT_SUPPORTED:
		return "Not supported";
	default:
		return "Server error";
	}
}

json_t *
rpc_error_response(json_t *id, int code, const struct base_error *err)
{
	json_t *data = json_pack("{s:s, s:s, s:s}", "errno", base_errno_name(err->err), "field",
		err->field, "reason", err->reason);

	return json_pack("{s:s, s:O?, s:{s:i, s:s, s:o}}", "jsonrpc", "2.0", "id", id, "error",
		"code", code, "message", message_of_code(code), "data", data);
}

static json_t *
invalid_request(json_t *id, const char *field, const char *reason)
{
	struct base_error e;

	base_error_set(&e, EINVAL, field, "%s", reason);
	return rpc_error_response(id, RPC_INVALID_REQUEST, &e);
}

static bool
valid_id(json_t *id)
{
	return id == NULL || json_is_string(id) || json_is_integer(id) || json_is_null(id);
}

static json_t *
process_one(struct rpc_registry *reg, json_t *req)
{
	json_t *id, *params, *result = NULL, *ver, *method;
	const struct rpc_method *m;
	struct base_error err = {0};
	bool notification;
	const char *key;
	json_t *val;
	int rc;

	if (!json_is_object(req))
		return invalid_request(json_null(), NULL, "a request must be a JSON object");
	id = json_object_get(req, "id");
	notification = id == NULL;
	if (!valid_id(id))
		return invalid_request(
			json_null(), "id", "id must be a string, an integer or null");
	json_object_foreach(req, key, val)
	{
		if (strcmp(key, "jsonrpc") && strcmp(key, "id") && strcmp(key, "method") &&
			strcmp(key, "params")) {
			base_error_set(&err, EINVAL, key, "unknown request member '%s'", key);
			return rpc_error_response(id ? id : json_null(), RPC_INVALID_REQUEST, &err);
		}
	}
	ver = json_object_get(req, "jsonrpc");
	if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0)
		return invalid_request(id ? id : json_null(), "jsonrpc", "jsonrpc must be \"2.0\"");
	method = json_object_get(req, "method");
	if (!json_is_string(method))
		return invalid_request(id ? id : json_null(), "method", "method must be a string");
	params = json_object_get(req, "params");
	if (params != NULL && !json_is_object(params)) {
		/* All our methods take named params; positional ones cannot name a field. */
		base_error_set(&err, EINVAL, "params", "params must be an object of named values");
		rc = RPC_INVALID_PARAMS;
		goto error;
	}

	m = find_method(reg, json_string_value(method));
	if (m == NULL) {
		base_error_set(&err, ENOSYS, "method", "no method '%s'; rpc_get_methods lists them",
			json_string_value(method));
		rc = RPC_METHOD_NOT_FOUND;
		goto error;
	}

	if (params == NULL) {
		params = json_object();
		rc = m->handler(m->ctx, params, &result, &err);
		json_decref(params);
	} else {
		rc = m->handler(m->ctx, params, &result, &err);
	}
	if (rc < 0) {
		if (err.err == 0)
			base_error_set(&err, -rc, NULL, "%s failed", json_string_value(method));
		rc = rpc_code_of_errno(err.err);
		goto error;
	}
	if (notification) {
		json_decref(result);
		return NULL;
	}
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result",
		result ? result : json_null());

error:
	if (notification)
		return NULL;
	return rpc_error_response(id, rc, &err);
}

json_t *
rpc_process(struct rpc_registry *reg, json_t *request)
{
	json_t *replies, *one, *r;
	size_t i;

	if (!json_is_array(request))
		return process_one(reg, request);
	if (json_array_size(request) == 0)
		return invalid_request(json_null(), NULL, "an empty batch");

	replies = json_array();
	if (replies == NULL)
		return NULL;
	json_array_foreach(request, i, one)
	{
		r = process_one(reg, one);
		if (r != NULL)
			json_array_append_new(replies, r);
	}
	if (json_array_size(replies) == 0) {
		json_decref(replies);
		return NULL; /* a batch of notifications gets no reply at all */
	}
	return replies;
}
