/* SPDX-License-Identifier: BSD-3-Clause */
/* Config files: shape checks, atomic save, replay through a real registry. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "rpc.h"

static json_t *seen;

static int
record(void *ctx, json_t *params, json_t **result, struct base_error *err)
{
	(void)ctx;
	if (json_object_get(params, "bad") != NULL)
		return base_error_set(err, EINVAL, "bad", "bad is bad");
	json_array_append(seen, params);
	*result = json_true();
	return 0;
}

static void
tmpname(char *buf, size_t size)
{
	snprintf(buf, size, "/tmp/vhostd-test-config-%d.json", (int)getpid());
}

static void
check_rejects_bad_shapes(void **state)
{
	static const struct {
		const char *text;
		const char *field;
	} rows[] = {
		{"{}", "config"},
		{"[1]", "config[0]"},
		{"[{\"method\":\"x\",\"id\":1}]", "config[0].id"},
		{"[{\"params\":{}}]", "config[0].method"},
		{"[{\"method\":\"x\",\"params\":[1]}]", "config[0].params"},
	};
	struct base_error err;
	json_t *c;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		c = json_loads(rows[i].text, 0, NULL);
		assert_int_equal(config_check(c, &err), -EINVAL);
		if (strcmp(err.field, rows[i].field) != 0)
			fail_msg("%s: expected field %s, got %s", rows[i].text, rows[i].field,
				err.field);
		json_decref(c);
	}
}

static void
save_then_load_replays_in_order(void **state)
{
	struct rpc_registry *reg = rpc_registry_create();
	struct base_error err;
	char path[128];
	json_t *calls;

	(void)state;
	tmpname(path, sizeof(path));
	seen = json_array();
	rpc_register(reg, "record", record, NULL);
	calls = json_pack("[{s:s, s:{s:i}}, {s:s, s:{s:i}}]", "method", "record", "params", "n", 1,
		"method", "record", "params", "n", 2);
	assert_int_equal(config_save(path, calls, &err), 0);
	assert_int_equal(config_load(path, reg, &err), 0);
	assert_true(json_equal(seen, json_pack("[{s:i}, {s:i}]", "n", 1, "n", 2)));
	json_decref(calls);
	unlink(path);
	json_decref(seen);
	rpc_registry_destroy(reg);
}

static void
load_stops_at_the_refused_entry_and_names_it(void **state)
{
	struct rpc_registry *reg = rpc_registry_create();
	struct base_error err;
	char path[128];
	FILE *f;

	(void)state;
	tmpname(path, sizeof(path));
	seen = json_array();
	rpc_register(reg, "record", record, NULL);
	f = fopen(path, "w");
	fputs("[{\"method\":\"record\",\"params\":{\"n\":1}},"
	      " {\"method\":\"record\",\"params\":{\"bad\":1}},"
	      " {\"method\":\"record\",\"params\":{\"n\":3}}]",
		f);
	fclose(f);
	assert_int_equal(config_load(path, reg, &err), -EINVAL);
	assert_string_equal(err.field, "config[1].params.bad");
	assert_non_null(strstr(err.reason, "entry 1 (record) refused: bad is bad"));
	assert_int_equal(json_array_size(seen), 1);

	f = fopen(path, "w");
	fputs("[{\"method\":\"nope\"}]", f);
	fclose(f);
	assert_int_equal(config_load(path, reg, &err), -EINVAL);
	assert_string_equal(err.field, "config[0].method");

	f = fopen(path, "w");
	fputs("[{\"method\": ", f);
	fclose(f);
	assert_int_equal(config_load(path, reg, &err), -EINVAL);
	assert_string_equal(err.field, "config");
	unlink(path);
	json_decref(seen);
	rpc_registry_destroy(reg);
}

static void
save_leaves_no_temporary_on_failure(void **state)
{
	struct base_error err;
	json_t *calls = json_array();

	(void)state;
	assert_int_equal(config_save("/nonexistent-dir/x.json", calls, &err), -ENOENT);
	assert_string_equal(err.field, "path");
	json_decref(calls);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(check_rejects_bad_shapes),
		cmocka_unit_test(save_then_load_replays_in_order),
		cmocka_unit_test(load_stops_at_the_refused_entry_and_names_it),
		cmocka_unit_test(save_leaves_no_temporary_on_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
