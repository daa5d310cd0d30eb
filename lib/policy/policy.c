/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base_limits.h"
#include "policy.h"
#include "rpc.h"

#define KIND_NET    (1u << POLICY_KIND_NET)
#define KIND_BLK    (1u << POLICY_KIND_BLK)
#define KIND_ETH    (1u << POLICY_KIND_ETH)
#define KIND_VIRTIO (KIND_NET | KIND_BLK)

struct feature_name {
	const char *name;
	unsigned int bit;
	unsigned int kinds;
};

/* virtio 1.2 section 5.1.3 (net), 5.2.3 (blk), 6 (reserved/transport) and vhost-user's own. */
static const struct feature_name features[] = {
	{"CSUM", 0, KIND_NET},
	{"GUEST_CSUM", 1, KIND_NET},
	{"CTRL_GUEST_OFFLOADS", 2, KIND_NET},
	{"MTU", 3, KIND_NET},
	{"MAC", 5, KIND_NET},
	{"GUEST_TSO4", 7, KIND_NET},
	{"GUEST_TSO6", 8, KIND_NET},
	{"GUEST_ECN", 9, KIND_NET},
	{"GUEST_UFO", 10, KIND_NET},
	{"HOST_TSO4", 11, KIND_NET},
	{"HOST_TSO6", 12, KIND_NET},
	{"HOST_ECN", 13, KIND_NET},
	{"HOST_UFO", 14, KIND_NET},
	{"MRG_RXBUF", 15, KIND_NET},
	{"STATUS", 16, KIND_NET},
	{"CTRL_VQ", 17, KIND_NET},
	{"CTRL_RX", 18, KIND_NET},
	{"CTRL_VLAN", 19, KIND_NET},
	{"GUEST_ANNOUNCE", 21, KIND_NET},
	{"MQ", 22, KIND_NET},
	{"CTRL_MAC_ADDR", 23, KIND_NET},
	{"SIZE_MAX", 1, KIND_BLK},
	{"SEG_MAX", 2, KIND_BLK},
	{"GEOMETRY", 4, KIND_BLK},
	{"RO", 5, KIND_BLK},
	{"BLK_SIZE", 6, KIND_BLK},
	{"FLUSH", 9, KIND_BLK},
	{"TOPOLOGY", 10, KIND_BLK},
	{"CONFIG_WCE", 11, KIND_BLK},
	{"MQ", 12, KIND_BLK},
	{"DISCARD", 13, KIND_BLK},
	{"WRITE_ZEROES", 14, KIND_BLK},
	{"NOTIFY_ON_EMPTY", 24, KIND_VIRTIO},
	{"LOG_ALL", 26, KIND_VIRTIO},
	{"ANY_LAYOUT", 27, KIND_VIRTIO},
	{"INDIRECT_DESC", 28, KIND_VIRTIO},
	{"EVENT_IDX", 29, KIND_VIRTIO},
	{"PROTOCOL_FEATURES", 30, KIND_VIRTIO},
	{"VERSION_1", 32, KIND_VIRTIO},
	{"ACCESS_PLATFORM", 33, KIND_VIRTIO | KIND_ETH},
	{"RING_PACKED", 34, KIND_VIRTIO},
	{"IN_ORDER", 35, KIND_VIRTIO},
	{"ORDER_PLATFORM", 36, KIND_VIRTIO},
};

static const char *const iommu_names[] = {"off", "platform", "translate", "required", NULL};

int
policy_feature_bit(enum policy_kind kind, const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(features) / sizeof(features[0]); i++)
		if ((features[i].kinds & (1u << kind)) && strcmp(features[i].name, name) == 0)
			return (int)features[i].bit;
	return -ENOENT;
}

const char *
policy_feature_name(enum policy_kind kind, unsigned int bit)
{
	size_t i;

	for (i = 0; i < sizeof(features) / sizeof(features[0]); i++)
		if ((features[i].kinds & (1u << kind)) && features[i].bit == bit)
			return features[i].name;
	return NULL;
}

const char *
policy_iommu_name(int mode)
{
	if (mode < POLICY_IOMMU_OFF || mode > POLICY_IOMMU_REQUIRED)
		return "?";
	return iommu_names[mode];
}

void
policy_init(struct policy *p)
{
	memset(p, 0, sizeof(*p));
	p->iommu = POLICY_IOMMU_OFF;
	p->max_queues = POLICY_QUEUES_MAX;
}

struct policy_params {
	int iommu;
	uint32_t max_queues;
	uint32_t mtu;
	bool offloads;
	json_t *features_deny;
};

static const struct rpc_param policy_spec[] = {
	{.name = "iommu",
		.type = RPC_PARAM_ENUM,
		.choices = iommu_names,
		.offset = offsetof(struct policy_params, iommu)},
	{.name = "max_queues",
		.type = RPC_PARAM_UINT,
		.min = 1,
		.max = POLICY_QUEUES_MAX,
		.offset = offsetof(struct policy_params, max_queues)},
	{.name = "mtu",
		.type = RPC_PARAM_UINT,
		.min = POLICY_MTU_MIN,
		.max = POLICY_MTU_MAX,
		.offset = offsetof(struct policy_params, mtu)},
	{.name = "offloads",
		.type = RPC_PARAM_BOOL,
		.offset = offsetof(struct policy_params, offloads)},
	{.name = "features_deny",
		.type = RPC_PARAM_STRINGS,
		.offset = offsetof(struct policy_params, features_deny)},
	{0},
};

int
policy_decode(json_t *obj, int kind, struct policy *p, struct base_errors *errs)
{
	struct policy_params pp = {.iommu = POLICY_IOMMU_OFF, .max_queues = POLICY_QUEUES_MAX};
	unsigned int before = errs->count + errs->dropped;
	char field[BASE_ERROR_FIELD_MAX];
	json_t *name;
	size_t i;
	int bit;

	policy_init(p);
	rpc_params_decode(obj, policy_spec, "policy", &pp, errs);
	p->iommu = pp.iommu;
	p->max_queues = pp.max_queues;
	p->mtu = pp.mtu;
	p->offloads = pp.offloads;
	if (pp.features_deny != NULL && kind >= 0) {
		json_array_foreach(pp.features_deny, i, name)
		{
			snprintf(field, sizeof(field), "policy.features_deny[%zu]", i);
			bit = policy_feature_bit(kind, json_string_value(name));
			if (bit < 0)
				base_errors_add(errs, EINVAL, field,
					"'%s' is not a feature of this device kind",
					json_string_value(name));
			else
				p->features_deny |= 1ULL << bit;
		}
	}
	return errs->count + errs->dropped == before ? 0 : -EINVAL;
}

json_t *
policy_to_json(const struct policy *p, enum policy_kind kind)
{
	json_t *deny = json_array();
	json_t *obj;
	unsigned int bit;
	const char *name;

	for (bit = 0; bit < 64; bit++) {
		if (!(p->features_deny & (1ULL << bit)))
			continue;
		name = policy_feature_name(kind, bit);
		if (name != NULL)
			json_array_append_new(deny, json_string(name));
	}
	obj = json_pack("{s:s, s:i, s:b, s:o}", "iommu", policy_iommu_name(p->iommu), "max_queues",
		(json_int_t)p->max_queues, "offloads", p->offloads, "features_deny", deny);
	if (obj != NULL && p->mtu != 0)
		json_object_set_new(obj, "mtu", json_integer(p->mtu));
	return obj;
}

uint64_t
policy_offload_features(enum policy_kind kind)
{
	if (kind != POLICY_KIND_NET)
		return 0;
	/* Checksum and segmentation offloads: a cross-connect would otherwise have to segment or
	 * checksum for a peer that did not negotiate them. */
	return (1ULL << 0) | (1ULL << 1) | (1ULL << 2) | (1ULL << 7) | (1ULL << 8) | (1ULL << 9) |
	       (1ULL << 10) | (1ULL << 11) | (1ULL << 12) | (1ULL << 13) | (1ULL << 14);
}

int
policy_check_attach(
	const struct policy *p, const struct policy_caps *caps, struct base_errors *errs)
{
	unsigned int before = errs->count + errs->dropped;

	if ((p->iommu == POLICY_IOMMU_TRANSLATE || p->iommu == POLICY_IOMMU_REQUIRED) &&
		!caps->can_translate)
		base_errors_add(errs, ENOTSUP, "policy.iommu",
			"iommu '%s' needs address translation, which this device cannot do: %s; "
			"use 'platform' to offer ACCESS_PLATFORM without translation",
			policy_iommu_name(p->iommu), caps->why_not ? caps->why_not : "no IOTLB");
	if (p->iommu != POLICY_IOMMU_OFF && (p->features_deny & POLICY_F_ACCESS_PLATFORM))
		base_errors_add(errs, EINVAL, "policy.features_deny",
			"ACCESS_PLATFORM is denied but policy.iommu is '%s', which offers it",
			policy_iommu_name(p->iommu));
	if (caps->queues > p->max_queues)
		base_errors_add(errs, ERANGE, "queues",
			"queues is %u but policy.max_queues allows at most %u", caps->queues,
			p->max_queues);
	if (caps->kind == POLICY_KIND_BLK && p->mtu != 0)
		base_errors_add(errs, EINVAL, "policy.mtu", "a block device has no MTU");
	if (errs->count + errs->dropped == before)
		return 0;
	return before < BASE_ERRORS_MAX ? -errs->list[before].err : -EINVAL;
}

uint64_t
policy_features_offered(const struct policy *p, enum policy_kind kind, uint64_t supported)
{
	uint64_t f = supported;

	if (!p->offloads)
		f &= ~policy_offload_features(kind);
	if (p->iommu == POLICY_IOMMU_OFF)
		f &= ~POLICY_F_ACCESS_PLATFORM;
	else
		f |= POLICY_F_ACCESS_PLATFORM;
	return f & ~p->features_deny;
}

bool
policy_check_session(const struct policy *p, const struct policy_caps *caps,
	const struct policy_session *s, char *reason, size_t reason_size)
{
	uint64_t denied = s->features & p->features_deny;
	uint64_t need =
		(1ULL << POLICY_PROTOCOL_F_REPLY_ACK) | (1ULL << POLICY_PROTOCOL_F_BACKEND_REQ);
	bool translates = policy_session_translates(s);

	if (denied != 0) {
		snprintf(reason, reason_size,
			"the frontend negotiated denied features 0x%llx (policy.features_deny)",
			(unsigned long long)denied);
		return false;
	}
	if (translates && p->iommu == POLICY_IOMMU_OFF) {
		snprintf(reason, reason_size,
			"the frontend negotiated ACCESS_PLATFORM, which "
			"policy.iommu 'off' never offers");
		return false;
	}
	if (!translates && p->iommu == POLICY_IOMMU_REQUIRED) {
		snprintf(reason, reason_size,
			"policy.iommu is 'required' but the frontend did not "
			"turn on address translation (no ACCESS_PLATFORM in SET_FEATURES)");
		return false;
	}
	if (translates && !caps->can_translate) {
		snprintf(reason, reason_size,
			"the frontend turned on address translation "
			"(ACCESS_PLATFORM in SET_FEATURES, a vIOMMU) but this device cannot translate: "
			"%s",
			caps->why_not ? caps->why_not : "no IOTLB");
		return false;
	}
	if (translates && (s->protocol_features & need) != need) {
		snprintf(reason, reason_size,
			"address translation needs the REPLY_ACK and "
			"BACKEND_REQ protocol features to request IOTLB misses; the frontend did not "
			"negotiate them");
		return false;
	}
	if (s->queues > caps->queues) {
		snprintf(reason, reason_size,
			"the frontend set up %u queues but the device serves "
			"%u (queues)",
			s->queues, caps->queues);
		return false;
	}
	if (p->mtu != 0 && s->mtu > p->mtu) {
		snprintf(reason, reason_size, "the frontend set MTU %u, above policy.mtu %u",
			s->mtu, p->mtu);
		return false;
	}
	return true;
}
