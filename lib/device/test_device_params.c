/* SPDX-License-Identifier: BSD-3-Clause */
/* device_attach params per kind: what is required, what does not apply, what is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "device_internal.h"

static int
decode(const char *text, struct device_config *cfg, struct base_errors *errs)
{
	json_t *p = json_loads(text, 0, NULL);
	int rc;

	assert_non_null(p);
	base_errors_init(errs);
	rc = device_config_decode(p, cfg, errs);
	json_decref(p);
	return rc;
}

static void
net_defaults(void **state)
{
	struct device_config cfg;
	struct base_errors errs;

	(void)state;
	assert_int_equal(decode("{\"name\":\"vm-1.eth0\",\"kind\":\"net\",\"socket\":\"/tmp/a\"}",
				 &cfg, &errs),
		0);
	assert_string_equal(cfg.name, "vm-1.eth0");
	assert_int_equal(cfg.kind, POLICY_KIND_NET);
	assert_int_equal(cfg.mode, DEVICE_MODE_SERVER);
	assert_int_equal(cfg.queues, 1);
	assert_int_equal(cfg.policy.iommu, POLICY_IOMMU_OFF);
	assert_null(cfg.policy_obj);
}

static void
per_kind_rules(void **state)
{
	static const struct {
		const char *params;
		const char *fields; /* the fields refused, in order, space separated */
	} rows[] = {
		{"{\"name\":\"a\",\"kind\":\"net\"}", "socket"},
		{"{\"name\":\"a\",\"kind\":\"net\",\"socket\":\"/s\",\"backing\":\"/f\"}",
			"backing"},
		{"{\"name\":\"a\",\"kind\":\"net\",\"socket\":\"/s\",\"devargs\":\"net_null0\"}",
			"devargs"},
		{"{\"name\":\"a\",\"kind\":\"blk\",\"socket\":\"/s\"}", "backing"},
		{"{\"name\":\"a\",\"kind\":\"blk\",\"socket\":\"/s\",\"backing\":\"/f\","
		 "\"block_size\":1000}",
			"block_size"},
		{"{\"name\":\"a\",\"kind\":\"blk\",\"socket\":\"/s\",\"backing\":\"/f\","
		 "\"policy\":{\"mtu\":1500}}",
			"policy.mtu"},
		{"{\"name\":\"a\",\"kind\":\"eth\"}", "devargs"},
		{"{\"name\":\"a\",\"kind\":\"eth\",\"devargs\":\"net_null0\",\"socket\":\"/s\","
		 "\"mode\":\"client\"}",
			"socket mode"},
		{"{\"name\":\"a\",\"kind\":\"eth\",\"devargs\":\"net_null0\","
		 "\"policy\":{\"iommu\":\"translate\"}}",
			"policy.iommu"},
		{"{\"name\":\"\",\"kind\":\"net\",\"socket\":\"/s\"}", "name"},
		{"{\"name\":\"abcdefghijabcdefghijabcdefghijabc\",\"kind\":\"net\",\"socket\":\"/s\"}",
			"name"},
		{"{\"name\":\"a/b\",\"kind\":\"net\",\"socket\":\"/s\"}", "name"},
		{"{\"name\":\"a\",\"kind\":\"net\",\"socket\":\"/s\",\"queues\":129}", "queues"},
		{"{\"name\":\"a\",\"kind\":\"net\",\"socket\":\"/s\",\"queues\":4,"
		 "\"policy\":{\"max_queues\":2}}",
			"queues"},
		{"{\"kind\":\"virtio\"}", "name kind"},
	};
	struct device_config cfg;
	struct base_errors errs;
	char got[256];
	size_t i;
	unsigned int j;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		rc = decode(rows[i].params, &cfg, &errs);
		got[0] = '\0';
		for (j = 0; j < errs.count; j++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", j ? " " : "",
				errs.list[j].field);
		if (rc == 0 || strcmp(got, rows[i].fields) != 0)
			fail_msg("row %zu %s: expected refusal of [%s], got rc=%d [%s]", i,
				rows[i].params, rows[i].fields, rc, got);
	}
}

static void
platform_is_never_refused_at_attach(void **state)
{
	static const char *const rows[] = {
		"{\"name\":\"a\",\"kind\":\"net\",\"socket\":\"/s\",\"policy\":{\"iommu\":\"platform\"}}",
		"{\"name\":\"a\",\"kind\":\"blk\",\"socket\":\"/s\",\"backing\":\"/f\","
		"\"policy\":{\"iommu\":\"platform\"}}",
		"{\"name\":\"a\",\"kind\":\"eth\",\"devargs\":\"net_null0\","
		"\"policy\":{\"iommu\":\"platform\"}}",
	};
	struct device_config cfg;
	struct base_errors errs;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		if (decode(rows[i], &cfg, &errs) != 0)
			fail_msg("%s refused: %s: %s", rows[i], errs.list[0].field,
				errs.list[0].reason);
}

static void
config_round_trip(void **state)
{
	struct device_config cfg, again;
	struct base_errors errs;
	json_t *o;

	(void)state;
	assert_int_equal(
		decode("{\"name\":\"d\",\"kind\":\"blk\",\"socket\":\"/s\",\"backing\":\"/f\","
		       "\"readonly\":true,\"block_size\":4096,\"queues\":2,\"mode\":\"client\","
		       "\"policy\":{\"iommu\":\"platform\",\"features_deny\":[\"FLUSH\"]}}",
			&cfg, &errs),
		0);
	o = device_config_to_json(&cfg);
	base_errors_init(&errs);
	assert_int_equal(device_config_decode(o, &again, &errs), 0);
	assert_string_equal(cfg.name, again.name);
	assert_string_equal(cfg.socket, again.socket);
	assert_string_equal(cfg.backing, again.backing);
	assert_int_equal(cfg.kind, again.kind);
	assert_int_equal(cfg.mode, again.mode);
	assert_int_equal(cfg.queues, again.queues);
	assert_int_equal(cfg.readonly, again.readonly);
	assert_int_equal(cfg.block_size, again.block_size);
	assert_int_equal(cfg.policy.iommu, again.policy.iommu);
	assert_int_equal(cfg.policy.features_deny, again.policy.features_deny);
	assert_int_equal(cfg.policy.max_queues, again.policy.max_queues);
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(net_defaults),
		cmocka_unit_test(per_kind_rules),
		cmocka_unit_test(platform_is_never_refused_at_attach),
		cmocka_unit_test(config_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
