/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of framing, dispatch, the error format and params decoding: no EAL, no sockets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rpc.h"

/* ---- framing ---- */

static int
feed_str(struct rpc_framer *fr, const char *s)
{
	return rpc_framer_feed(fr, s, strlen(s));
}

static void
framer_splits_concatenated_values(void **state)
{
	struct rpc_framer *fr = rpc_framer_create(1 << 20);
	struct base_error err;
	json_t *v;

	(void)state;
	assert_int_equal(feed_str(fr, " {\"a\":1}\n[2,3]  {\"b\""), 0);
	assert_int_equal(rpc_framer_next(fr, &v, &err), 1);
	assert_int_equal(json_integer_value(json_object_get(v, "a")), 1);
	json_decref(v);
	assert_int_equal(rpc_framer_next(fr, &v, &err), 1);
	assert_true(json_is_array(v));
	json_decref(v);
	/* The third value is cut short: wait for more. */
	assert_int_equal(rpc_framer_next(fr, &v, &err), 0);
	assert_true(rpc_framer_pending(fr));
	assert_int_equal(feed_str(fr, ":true}"), 0);
	assert_int_equal(rpc_framer_next(fr, &v, &err), 1);
	assert_true(json_is_true(json_object_get(v, "b")));
	json_decref(v);
	assert_false(rpc_framer_pending(fr));
	rpc_framer_destroy(fr);
}

static void
framer_waits_on_cut_escapes_literals_and_numbers(void **state)
{
	static const char *cut[] = {"{\"a\":\"\\u00", "tru", "12", "{\"a\":", "[1,"};
	struct rpc_framer *fr;
	struct base_error err;
	json_t *v;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		fr = rpc_framer_create(1 << 20);
		feed_str(fr, cut[i]);
		assert_int_equal(rpc_framer_next(fr, &v, &err), 0);
		assert_null(v);
		rpc_framer_destroy(fr);
	}
}

static void
framer_reports_malformed_json_and_resets(void **state)
{
	struct rpc_framer *fr = rpc_framer_create(1 << 20);
	struct base_error err = {0};
	json_t *v;

	(void)state;
	feed_str(fr, "{\"a\" 1} {\"ok\":1}");
	assert_int_equal(rpc_framer_next(fr, &v, &err), -EBADMSG);
	assert_int_equal(err.err, EBADMSG);
	assert_non_null(strstr(err.reason, "malformed JSON"));
	assert_false(rpc_framer_pending(fr));
	rpc_framer_destroy(fr);
}

static void
framer_refuses_oversized_values(void **state)
{
	struct rpc_framer *fr = rpc_framer_create(16);

	(void)state;
	assert_int_equal(feed_str(fr, "{\"aaaaaaa\":"), 0);
	assert_int_equal(feed_str(fr, "\"bbbbbbbbbbbbb\"}"), -EMSGSIZE);
	rpc_framer_destroy(fr);
}

/* ---- dispatch ---- */

static int
echo(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	json_t *fail = json_object_get(params, "fail");

	(void)ctx;
	if (json_is_string(fail))
		return base_error_set(err, EEXIST, json_string_value(fail), "it exists");
	*result = json_incref(params);
	return 0;
}

static json_t *
process(struct rpc_registry *reg, const char *text)
{
	json_t *req = json_loads(text, JSON_DECODE_ANY, NULL);
	json_t *rep;

	assert_non_null(req);
	rep = rpc_process(reg, req);
	json_decref(req);
	return rep;
}

static int
error_code(json_t *rep)
{
	return (int)json_integer_value(json_object_get(json_object_get(rep, "error"), "code"));
}

static const char *
error_data(json_t *rep, const char *key)
{
	json_t *data = json_object_get(json_object_get(rep, "error"), "data");

	return json_string_value(json_object_get(data, key));
}

static void
dispatch_results_and_errors(void **state)
{
	struct rpc_registry *reg = rpc_registry_create();
	json_t *rep;

	(void)state;
	assert_int_equal(rpc_register(reg, "echo", echo, NULL), 0);
	assert_int_equal(rpc_register(reg, "echo", echo, NULL), -EEXIST);

	rep = process(
		reg, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"echo\",\"params\":{\"x\":1}}");
	assert_int_equal(json_integer_value(json_object_get(rep, "id")), 5);
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(rep, "result"), "x")), 1);
	json_decref(rep);

	rep = process(reg, "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"nope\"}");
	assert_int_equal(error_code(rep), RPC_METHOD_NOT_FOUND);
	assert_string_equal(json_string_value(json_object_get(rep, "id")), "s");
	assert_string_equal(error_data(rep, "field"), "method");
	json_decref(rep);

	rep = process(reg, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\","
			   "\"params\":{\"fail\":\"name\"}}");
	assert_int_equal(error_code(rep), RPC_EXISTS);
	assert_string_equal(error_data(rep, "errno"), "EEXIST");
	assert_string_equal(error_data(rep, "field"), "name");
	assert_string_equal(error_data(rep, "reason"), "it exists");
	json_decref(rep);

	rep = process(reg, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[1]}");
	assert_int_equal(error_code(rep), RPC_INVALID_PARAMS);
	assert_string_equal(error_data(rep, "field"), "params");
	json_decref(rep);
	rpc_registry_destroy(reg);
}

static void
dispatch_invalid_requests(void **state)
{
	static const struct {
		const char *req;
		const char *field;
	} cases[] = {
		{"5", ""},
		{"{\"method\":\"echo\",\"id\":1}", "jsonrpc"},
		{"{\"jsonrpc\":\"2.0\",\"id\":1}", "method"},
		{"{\"jsonrpc\":\"2.0\",\"method\":3,\"id\":1}", "method"},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1.5}", "id"},
		{"{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1,\"extra\":0}", "extra"},
		{"[]", ""},
	};
	struct rpc_registry *reg = rpc_registry_create();
	json_t *rep;
	size_t i;

	(void)state;
	rpc_register(reg, "echo", echo, NULL);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rep = process(reg, cases[i].req);
		assert_non_null(rep);
		assert_int_equal(error_code(rep), RPC_INVALID_REQUEST);
		assert_string_equal(error_data(rep, "field"), cases[i].field);
		json_decref(rep);
	}
	rpc_registry_destroy(reg);
}

static void
dispatch_batches_and_notifications(void **state)
{
	struct rpc_registry *reg = rpc_registry_create();
	json_t *rep;

	(void)state;
	rpc_register(reg, "echo", echo, NULL);
	/* A notification gets no reply, even when it fails. */
	assert_null(process(reg, "{\"jsonrpc\":\"2.0\",\"method\":\"echo\"}"));
	assert_null(process(reg, "{\"jsonrpc\":\"2.0\",\"method\":\"nope\"}"));
	assert_null(process(reg, "[{\"jsonrpc\":\"2.0\",\"method\":\"echo\"}]"));

	rep = process(reg, "[{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1}, 7,"
			   "{\"jsonrpc\":\"2.0\",\"method\":\"echo\"}]");
	assert_int_equal(json_array_size(rep), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(rep, 0), "id")), 1);
	assert_int_equal(error_code(json_array_get(rep, 1)), RPC_INVALID_REQUEST);
	assert_true(json_is_null(json_object_get(json_array_get(rep, 1), "id")));
	json_decref(rep);
	rpc_registry_destroy(reg);
}

static void
errno_codes_are_stable(void **state)
{
	(void)state;
	assert_int_equal(rpc_code_of_errno(EINVAL), RPC_INVALID_PARAMS);
	assert_int_equal(rpc_code_of_errno(ENOENT), RPC_NOT_FOUND);
	assert_int_equal(rpc_code_of_errno(EEXIST), RPC_EXISTS);
	assert_int_equal(rpc_code_of_errno(EADDRINUSE), RPC_BUSY);
	assert_int_equal(rpc_code_of_errno(EPERM), RPC_REFUSED);
	assert_int_equal(rpc_code_of_errno(ENOSPC), RPC_LIMIT);
	assert_int_equal(rpc_code_of_errno(ENOTSUP), RPC_NOT_SUPPORTED);
	assert_int_equal(rpc_code_of_errno(EIO), RPC_SERVER_ERROR);
	assert_string_equal(base_errno_name(EADDRINUSE), "EADDRINUSE");
	assert_string_equal(base_errno_name(4000), "E4000");
}

/* ---- params ---- */

struct sample {
	char name[9];
	uint32_t count;
	bool flag;
	int colour;
	json_t *list;
	bool count_set;
};

static const char *const colours[] = {"red", "green", NULL};

static const struct rpc_param sample_spec[] = {
	{.name = "name",
		.type = RPC_PARAM_STRING,
		.required = true,
		.min = 1,
		.max = 8,
		.charset = "abc",
		.offset = offsetof(struct sample, name)},
	{.name = "count",
		.type = RPC_PARAM_UINT,
		.min = 1,
		.max = 10,
		.offset = offsetof(struct sample, count),
		.present_offset = offsetof(struct sample, count_set)},
	{.name = "flag", .type = RPC_PARAM_BOOL, .offset = offsetof(struct sample, flag)},
	{.name = "colour",
		.type = RPC_PARAM_ENUM,
		.choices = colours,
		.offset = offsetof(struct sample, colour)},
	{.name = "list", .type = RPC_PARAM_STRINGS, .offset = offsetof(struct sample, list)},
	{0},
};

static void
params_decode_good(void **state)
{
	json_t *p = json_pack("{s:s, s:i, s:b, s:s, s:[s]}", "name", "abca", "count", 3, "flag", 1,
		"colour", "green", "list", "x");
	struct sample s;
	struct base_errors errs;

	(void)state;
	memset(&s, 0, sizeof(s));
	base_errors_init(&errs);
	assert_int_equal(rpc_params_decode(p, sample_spec, NULL, &s, &errs), 0);
	assert_string_equal(s.name, "abca");
	assert_int_equal(s.count, 3);
	assert_true(s.count_set);
	assert_true(s.flag);
	assert_int_equal(s.colour, 1);
	assert_int_equal(json_array_size(s.list), 1);
	json_decref(p);
}

static void
params_decode_reports_every_problem(void **state)
{
	json_t *p = json_pack("{s:s, s:i, s:s, s:s, s:[i], s:i}", "name", "abz", "count", 11,
		"flag", "yes", "colour", "blue", "list", 1, "other", 0);
	struct sample s;
	struct base_errors errs;

	(void)state;
	memset(&s, 0, sizeof(s));
	base_errors_init(&errs);
	assert_int_equal(rpc_params_decode(p, sample_spec, "outer", &s, &errs), -EINVAL);
	assert_int_equal(errs.count, 6);
	/* Unknown keys first, then the spec's order. */
	assert_string_equal(errs.list[0].field, "outer.other");
	assert_string_equal(errs.list[1].field, "outer.name");
	assert_string_equal(errs.list[2].field, "outer.count");
	assert_int_equal(errs.list[2].err, ERANGE);
	assert_non_null(strstr(errs.list[2].reason, "from 1 to 10, not 11"));
	assert_string_equal(errs.list[3].field, "outer.flag");
	assert_string_equal(errs.list[4].field, "outer.colour");
	assert_non_null(strstr(errs.list[4].reason, "red, green"));
	assert_string_equal(errs.list[5].field, "outer.list");
	json_decref(p);

	base_errors_init(&errs);
	assert_int_equal(rpc_params_decode(NULL, sample_spec, NULL, &s, &errs), -EINVAL);
	assert_int_equal(errs.count, 1);
	assert_string_equal(errs.list[0].field, "name");
	assert_non_null(strstr(errs.list[0].reason, "required"));
}

static void
params_string_lengths(void **state)
{
	json_t *p = json_pack("{s:s}", "name", "abcabcabc"); /* 9 > max 8 */
	struct sample s;
	struct base_errors errs;

	(void)state;
	base_errors_init(&errs);
	assert_int_equal(rpc_params_decode(p, sample_spec, NULL, &s, &errs), -EINVAL);
	assert_string_equal(errs.list[0].field, "name");
	json_decref(p);
	p = json_pack("{s:s#}", "name", "ab\0c", (size_t)4); /* an embedded NUL */
	base_errors_init(&errs);
	assert_int_equal(rpc_params_decode(p, sample_spec, NULL, &s, &errs), -EINVAL);
	json_decref(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(framer_splits_concatenated_values),
		cmocka_unit_test(framer_waits_on_cut_escapes_literals_and_numbers),
		cmocka_unit_test(framer_reports_malformed_json_and_resets),
		cmocka_unit_test(framer_refuses_oversized_values),
		cmocka_unit_test(dispatch_results_and_errors),
		cmocka_unit_test(dispatch_invalid_requests),
		cmocka_unit_test(dispatch_batches_and_notifications),
		cmocka_unit_test(errno_codes_are_stable),
		cmocka_unit_test(params_decode_good),
		cmocka_unit_test(params_decode_reports_every_problem),
		cmocka_unit_test(params_string_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
