/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "rpc.h"

int
config_check(json_t *calls, struct base_error *err)
{
	const char *key;
	json_t *call, *v;
	char field[BASE_ERROR_FIELD_MAX];
	size_t i;

	if (!json_is_array(calls))
		return base_error_set(err, EINVAL, "config",
			"a configuration is a list of {method, params} calls");
	json_array_foreach(calls, i, call)
	{
		snprintf(field, sizeof(field), "config[%zu]", i);
		if (!json_is_object(call))
			return base_error_set(err, EINVAL, field, "%s must be an object", field);
		json_object_foreach(call, key, v)
		{
			if (strcmp(key, "method") != 0 && strcmp(key, "params") != 0) {
				snprintf(field, sizeof(field), "config[%zu].%s", i, key);
				return base_error_set(err, EINVAL, field, "unknown key '%s'", key);
			}
		}
		if (!json_is_string(json_object_get(call, "method"))) {
			snprintf(field, sizeof(field), "config[%zu].method", i);
			return base_error_set(err, EINVAL, field, "%s must be a string", field);
		}
		v = json_object_get(call, "params");
		if (v != NULL && !json_is_object(v)) {
			snprintf(field, sizeof(field), "config[%zu].params", i);
			return base_error_set(err, EINVAL, field, "%s must be an object", field);
		}
	}
	return 0;
}

static int
refused(const char *path, size_t i, json_t *call, json_t *data, struct base_error *err)
{
	const char *reason = json_string_value(json_object_get(data, "reason"));
	const char *field = json_string_value(json_object_get(data, "field"));
	const char *errname = json_string_value(json_object_get(data, "errno"));

	base_error_set(err, EINVAL, NULL, "%s: entry %zu (%s) refused: %s%s%s", path, i,
		json_string_value(json_object_get(call, "method")), reason ? reason : "no reply",
		errname ? " " : "", errname ? errname : "");
	if (field != NULL && strcmp(field, "method") == 0)
		snprintf(err->field, sizeof(err->field), "config[%zu].method", i);
	else if (field != NULL && field[0] != '\0')
		snprintf(err->field, sizeof(err->field), "config[%zu].params.%s", i, field);
	else
		snprintf(err->field, sizeof(err->field), "config[%zu]", i);
	return -EINVAL;
}

int
config_load(const char *path, struct rpc_registry *reg, struct base_error *err)
{
	json_t *calls, *call, *req, *reply, *e;
	json_error_t jerr;
	size_t i;
	int rc;

	calls = json_load_file(path, 0, &jerr);
	if (calls == NULL)
		return base_error_set(err, jerr.line < 0 ? ENOENT : EINVAL, "config",
			"%s: line %d: %s", path, jerr.line, jerr.text);
	rc = config_check(calls, err);
	json_array_foreach(calls, i, call)
	{
		if (rc != 0)
			break;
		req = json_pack("{s:s, s:I, s:O}", "jsonrpc", "2.0", "id", (json_int_t)i, "method",
			json_object_get(call, "method"));
		if (json_object_get(call, "params") != NULL)
			json_object_set(req, "params", json_object_get(call, "params"));
		reply = rpc_process(reg, req);
		json_decref(req);
		e = json_object_get(reply, "error");
		if (reply == NULL || e != NULL)
			rc = refused(path, i, call, json_object_get(e, "data"), err);
		json_decref(reply);
	}
	json_decref(calls);
	return rc;
}

static int
fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

int
config_save(const char *path, json_t *calls, struct base_error *err)
{
	char tmp[PATH_MAX];
	char *text;
	size_t len, off = 0;
	ssize_t n;
	int fd, e;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
		return base_error_set(err, ENAMETOOLONG, "path", "path too long");
	text = json_dumps(calls, JSON_INDENT(2));
	if (text == NULL)
		return base_error_set(err, ENOMEM, NULL, "out of memory");
	len = strlen(text);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		e = errno;
		free(text);
		return base_error_set(err, e, "path", "cannot create %s: %s", tmp, strerror(e));
	}
	while (off < len) {
		n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		off += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	free(text);
	/* rename() is atomic: readers see the old file or the new one, never half of one. */
	if (rename(tmp, path) < 0) {
		e = errno;
		unlink(tmp);
		return base_error_set(
			err, e, "path", "cannot rename %s to %s: %s", tmp, path, strerror(e));
	}
	fsync_dir(path);
	return 0;

fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(text);
	return base_error_set(err, e, "path", "cannot write %s: %s", tmp, strerror(e));
}

struct save_ctx {
	char default_path[PATH_MAX];
	config_calls_fn calls;
};

static struct save_ctx save_ctx;

struct save_params {
	char path[PATH_MAX];
};

static const struct rpc_param save_spec[] = {
	{.name = "path",
		.type = RPC_PARAM_STRING,
		.min = 1,
		.max = PATH_MAX - 1,
		.offset = offsetof(struct save_params, path)},
	{0},
};

static int
rpc_config_save(void *arg, json_t *params, json_t **result, struct base_error *err)
{
	struct save_ctx *ctx = arg;
	struct save_params p = {{0}};
	struct base_errors errs;
	const char *path;
	json_t *calls;
	int rc;

	base_errors_init(&errs);
	if (rpc_params_decode(params, save_spec, NULL, &p, &errs) < 0) {
		*err = errs.list[0];
		return -err->err;
	}
	path = p.path[0] ? p.path : ctx->default_path;
	if (path[0] == '\0')
		return base_error_set(err, EINVAL, "path",
			"vhostd was started without -c: give a path to save to");
	calls = ctx->calls();
	rc = config_save(path, calls, err);
	json_decref(calls);
	if (rc == 0)
		*result = json_pack("{s:s}", "path", path);
	return rc;
}

int
config_rpc_register(struct rpc_registry *reg, const char *default_path, config_calls_fn calls)
{
	snprintf(save_ctx.default_path, sizeof(save_ctx.default_path), "%s",
		default_path ? default_path : "");
	save_ctx.calls = calls;
	return rpc_register(reg, "config_save", rpc_config_save, &save_ctx);
}
