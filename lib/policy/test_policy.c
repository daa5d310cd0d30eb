/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The ACCESS_PLATFORM rules of design.md section 3 as tables: attach-time and session-time
 * verdicts for every kind and mode. Each failing row says what it expected and what came.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

#define BIT33	 POLICY_F_ACCESS_PLATFORM
#define PROTO_OK ((1ULL << POLICY_PROTOCOL_F_REPLY_ACK) | (1ULL << POLICY_PROTOCOL_F_BACKEND_REQ))

static const char *kinds[] = {"net", "blk", "eth"};

static struct policy_caps
caps_of(enum policy_kind kind, bool can_translate)
{
	struct policy_caps c = {.kind = kind,
		.queues = 1,
		.can_translate = can_translate,
		.why_not = can_translate ? NULL : "no IOTLB for this kind"};
	return c;
}

/* Attach: translate/required refused exactly where the kind cannot translate; platform and
 * off never refused on that ground. */
static void
attach_matrix(void **state)
{
	static const struct {
		enum policy_kind kind;
		bool can_translate;
		int iommu;
		int expect; /* 0 or -errno */
	} rows[] = {
		{POLICY_KIND_NET, true, POLICY_IOMMU_OFF, 0},
		{POLICY_KIND_NET, true, POLICY_IOMMU_PLATFORM, 0},
		{POLICY_KIND_NET, true, POLICY_IOMMU_TRANSLATE, 0},
		{POLICY_KIND_NET, true, POLICY_IOMMU_REQUIRED, 0},
		{POLICY_KIND_BLK, false, POLICY_IOMMU_OFF, 0},
		{POLICY_KIND_BLK, false, POLICY_IOMMU_PLATFORM, 0},
		{POLICY_KIND_BLK, false, POLICY_IOMMU_TRANSLATE, -ENOTSUP},
		{POLICY_KIND_BLK, false, POLICY_IOMMU_REQUIRED, -ENOTSUP},
		{POLICY_KIND_BLK, true, POLICY_IOMMU_TRANSLATE, 0},
		{POLICY_KIND_ETH, false, POLICY_IOMMU_PLATFORM, 0},
		{POLICY_KIND_ETH, false, POLICY_IOMMU_REQUIRED, -ENOTSUP},
	};
	struct base_errors errs;
	struct policy p;
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct policy_caps c = caps_of(rows[i].kind, rows[i].can_translate);

		policy_init(&p);
		p.iommu = rows[i].iommu;
		base_errors_init(&errs);
		rc = policy_check_attach(&p, &c, &errs);
		if (rc != rows[i].expect)
			fail_msg("row %zu: %s can_translate=%d iommu=%s: expected %d, got %d (%s)",
				i, kinds[rows[i].kind], rows[i].can_translate,
				policy_iommu_name(rows[i].iommu), rows[i].expect, rc,
				errs.count ? errs.list[0].reason : "");
		if (rc != 0) {
			assert_string_equal(errs.list[0].field, "policy.iommu");
			assert_non_null(strstr(errs.list[0].reason, "no IOTLB for this kind"));
		}
	}
}

/* Offer: bit 33 is offered for every kind unless iommu is off, whatever the kind can do. */
static void
offer_matrix(void **state)
{
	struct policy p;
	int kind, mode;
	uint64_t f;

	(void)state;
	for (kind = POLICY_KIND_NET; kind <= POLICY_KIND_ETH; kind++) {
		for (mode = POLICY_IOMMU_OFF; mode <= POLICY_IOMMU_REQUIRED; mode++) {
			policy_init(&p);
			p.iommu = mode;
			f = policy_features_offered(&p, kind, 1ULL << 32);
			if (((f & BIT33) != 0) != (mode != POLICY_IOMMU_OFF))
				fail_msg("%s/%s: bit 33 offered=%d", kinds[kind],
					policy_iommu_name(mode), (f & BIT33) != 0);
			assert_true(f & (1ULL << 32));
		}
	}
	/* offloads off withholds checksum/TSO, and denied features are never offered. */
	policy_init(&p);
	p.features_deny = 1ULL << 15;
	f = policy_features_offered(&p, POLICY_KIND_NET, (1ULL << 0) | (1ULL << 11) | (1ULL << 15));
	assert_int_equal(f, 0);
	p.offloads = true;
	f = policy_features_offered(&p, POLICY_KIND_NET, (1ULL << 0) | (1ULL << 11) | (1ULL << 15));
	assert_int_equal(f, (1ULL << 0) | (1ULL << 11));
}

/* Session: {kind can translate?} x {iommu} x {frontend: no bit 33 / bit 33} -> run or refuse.
 * "bit 33 without translation" is the no-vIOMMU case: QEMU strips it, so the backend sees none. */
static void
session_matrix(void **state)
{
	static const struct {
		bool can_translate;
		int iommu;
		bool bit33;
		bool runs;
		const char *why; /* a word the refusal must contain */
	} rows[] = {
		{true, POLICY_IOMMU_OFF, false, true, NULL},
		{true, POLICY_IOMMU_PLATFORM, false, true, NULL},
		{true, POLICY_IOMMU_PLATFORM, true, true, NULL},
		{true, POLICY_IOMMU_TRANSLATE, false, true, NULL},
		{true, POLICY_IOMMU_TRANSLATE, true, true, NULL},
		{true, POLICY_IOMMU_REQUIRED, false, false, "required"},
		{true, POLICY_IOMMU_REQUIRED, true, true, NULL},
		{false, POLICY_IOMMU_OFF, false, true, NULL},
		{false, POLICY_IOMMU_PLATFORM, false, true, NULL},
		{false, POLICY_IOMMU_PLATFORM, true, false, "cannot translate"},
	};
	struct policy p;
	struct policy_session s;
	char reason[256];
	size_t i;
	bool runs;

	(void)state;
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct policy_caps c = caps_of(POLICY_KIND_BLK, rows[i].can_translate);

		policy_init(&p);
		p.iommu = rows[i].iommu;
		s = (struct policy_session){.features = (1ULL << 32) | (rows[i].bit33 ? BIT33 : 0),
			.protocol_features = PROTO_OK,
			.queues = 1};
		reason[0] = '\0';
		runs = policy_check_session(&p, &c, &s, reason, sizeof(reason));
		if (runs != rows[i].runs)
			fail_msg("row %zu: can_translate=%d iommu=%s bit33=%d: expected %s, got %s "
				 "(%s)",
				i, rows[i].can_translate, policy_iommu_name(rows[i].iommu),
				rows[i].bit33, rows[i].runs ? "run" : "refuse",
				runs ? "run" : "refuse", reason);
		if (!runs && strstr(reason, rows[i].why) == NULL)
			fail_msg("row %zu: the reason '%s' does not say '%s'", i, reason,
				rows[i].why);
		assert_int_equal(policy_session_translates(&s), rows[i].bit33);
	}
}

static void
session_other_refusals(void **state)
{
	struct policy_caps c = caps_of(POLICY_KIND_NET, true);
	struct policy_session s = {.features = BIT33, .protocol_features = 0, .queues = 1};
	struct policy p;
	char reason[256];

	(void)state;
	policy_init(&p);
	p.iommu = POLICY_IOMMU_TRANSLATE;
	/* Translation without the backend channel could never ask for a miss. */
	assert_false(policy_check_session(&p, &c, &s, reason, sizeof(reason)));
	assert_non_null(strstr(reason, "BACKEND_REQ"));
	/* More queues than the device serves. */
	s = (struct policy_session){.queues = 2};
	assert_false(policy_check_session(&p, &c, &s, reason, sizeof(reason)));
	assert_non_null(strstr(reason, "queues"));
	/* An MTU above the policy. */
	p.mtu = 1500;
	s = (struct policy_session){.queues = 1, .mtu = 9000};
	assert_false(policy_check_session(&p, &c, &s, reason, sizeof(reason)));
	assert_non_null(strstr(reason, "policy.mtu"));
}

static void
decode_policy_objects(void **state)
{
	struct base_errors errs;
	struct policy p;
	json_t *o;

	(void)state;
	o = json_pack("{s:s, s:i, s:[s, s], s:b}", "iommu", "required", "mtu", 1500,
		"features_deny", "MRG_RXBUF", "EVENT_IDX", "offloads", 1);
	base_errors_init(&errs);
	assert_int_equal(policy_decode(o, POLICY_KIND_NET, &p, &errs), 0);
	assert_int_equal(p.iommu, POLICY_IOMMU_REQUIRED);
	assert_int_equal(p.mtu, 1500);
	assert_true(p.offloads);
	assert_int_equal(p.features_deny, (1ULL << 15) | (1ULL << 29));
	json_decref(o);

	/* A net feature name is not a blk one; unknown keys are named. */
	o = json_pack("{s:[s], s:i}", "features_deny", "MRG_RXBUF", "speed", 3);
	base_errors_init(&errs);
	assert_int_equal(policy_decode(o, POLICY_KIND_BLK, &p, &errs), -EINVAL);
	assert_int_equal(errs.count, 2);
	assert_string_equal(errs.list[0].field, "policy.speed");
	assert_string_equal(errs.list[1].field, "policy.features_deny[0]");
	json_decref(o);

	/* Denying ACCESS_PLATFORM while offering it is a contradiction, caught at attach. */
	o = json_pack("{s:s, s:[s]}", "iommu", "platform", "features_deny", "ACCESS_PLATFORM");
	base_errors_init(&errs);
	assert_int_equal(policy_decode(o, POLICY_KIND_NET, &p, &errs), 0);
	struct policy_caps c = caps_of(POLICY_KIND_NET, true);
	assert_int_equal(policy_check_attach(&p, &c, &errs), -EINVAL);
	assert_string_equal(errs.list[0].field, "policy.features_deny");
	json_decref(o);

	/* Round trip through JSON. */
	policy_init(&p);
	p.iommu = POLICY_IOMMU_PLATFORM;
	p.features_deny = 1ULL << 15;
	o = policy_to_json(&p, POLICY_KIND_NET);
	assert_string_equal(json_string_value(json_object_get(o, "iommu")), "platform");
	assert_string_equal(
		json_string_value(json_array_get(json_object_get(o, "features_deny"), 0)),
		"MRG_RXBUF");
	json_decref(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(attach_matrix),
		cmocka_unit_test(offer_matrix),
		cmocka_unit_test(session_matrix),
		cmocka_unit_test(session_other_refusals),
		cmocka_unit_test(decode_policy_objects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
