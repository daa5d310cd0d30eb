/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * device_attach params: decoded by a table, then checked per kind. Pure (jansson only): the
 * unit tests call it directly.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "device_internal.h"
#include "rpc.h"

#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

static const char *const kind_names[] = {"net", "blk", "eth", NULL};
static const char *const mode_names[] = {"server", "client", NULL};

/* Block sizes virtio-blk guests accept: a power of two from 512 to 64 KiB. */
#define BLOCK_SIZE_MIN 512
#define BLOCK_SIZE_MAX 65536

struct attach_params {
	struct device_config cfg;
	bool socket_set, mode_set, backing_set, readonly_set, block_size_set, devargs_set;
};

#define AP(f) offsetof(struct attach_params, f)

static const struct rpc_param attach_spec[] = {
	{.name = "name",
		.type = RPC_PARAM_STRING,
		.required = true,
		.offset = AP(cfg.name),
		.min = 1,
		.max = DEVICE_NAME_MAX,
		.charset = NAME_CHARS},
	{.name = "kind",
		.type = RPC_PARAM_ENUM,
		.required = true,
		.offset = AP(cfg.kind),
		.choices = kind_names},
	{.name = "socket",
		.type = RPC_PARAM_STRING,
		.offset = AP(cfg.socket),
		.min = 1,
		.max = SOCKET_PATH_MAX,
		.present_offset = AP(socket_set)},
	{.name = "mode",
		.type = RPC_PARAM_ENUM,
		.offset = AP(cfg.mode),
		.choices = mode_names,
		.present_offset = AP(mode_set)},
	{.name = "queues",
		.type = RPC_PARAM_UINT,
		.offset = AP(cfg.queues),
		.min = 1,
		.max = DEVICE_QUEUES_MAX},
	{.name = "policy", .type = RPC_PARAM_OBJECT, .offset = AP(cfg.policy_obj)},
	{.name = "backing",
		.type = RPC_PARAM_STRING,
		.offset = AP(cfg.backing),
		.min = 1,
		.max = PATH_MAX - 1,
		.present_offset = AP(backing_set)},
	{.name = "readonly",
		.type = RPC_PARAM_BOOL,
		.offset = AP(cfg.readonly),
		.present_offset = AP(readonly_set)},
	{.name = "block_size",
		.type = RPC_PARAM_UINT,
		.offset = AP(cfg.block_size),
		.min = BLOCK_SIZE_MIN,
		.max = BLOCK_SIZE_MAX,
		.present_offset = AP(block_size_set)},
	{.name = "devargs",
		.type = RPC_PARAM_STRING,
		.offset = AP(cfg.devargs),
		.min = 1,
		.max = DEVICE_DEVARGS_MAX,
		.present_offset = AP(devargs_set)},
	{0},
};

const char *
device_kind_name(int kind)
{
	if (kind < POLICY_KIND_NET || kind > POLICY_KIND_ETH)
		return "?";
	return kind_names[kind];
}

static void
only_for(struct base_errors *errs, bool given, bool allowed, const char *field, const char *kind)
{
	if (given && !allowed)
		base_errors_add(
			errs, EINVAL, field, "%s does not apply to a %s device", field, kind);
}

int
device_config_decode(json_t *params, struct device_config *cfg, struct base_errors *errs)
{
	struct attach_params ap = {.cfg = {.kind = -1, .queues = 1, .block_size = 512}};
	unsigned int before = errs->count + errs->dropped;
	const char *kind;
	bool vhost;

	rpc_params_decode(params, attach_spec, NULL, &ap, errs);
	*cfg = ap.cfg;
	kind = device_kind_name(cfg->kind);
	vhost = cfg->kind == POLICY_KIND_NET || cfg->kind == POLICY_KIND_BLK;

	if (cfg->kind >= 0) {
		if (vhost && !ap.socket_set)
			base_errors_add(
				errs, EINVAL, "socket", "a %s device needs a socket path", kind);
		only_for(errs, ap.socket_set, vhost, "socket", kind);
		only_for(errs, ap.mode_set, vhost, "mode", kind);
		if (cfg->kind == POLICY_KIND_BLK && !ap.backing_set)
			base_errors_add(errs, EINVAL, "backing",
				"a blk device needs a backing file or block device");
		only_for(errs, ap.backing_set, cfg->kind == POLICY_KIND_BLK, "backing", kind);
		only_for(errs, ap.readonly_set, cfg->kind == POLICY_KIND_BLK, "readonly", kind);
		only_for(errs, ap.block_size_set, cfg->kind == POLICY_KIND_BLK, "block_size", kind);
		if (cfg->kind == POLICY_KIND_ETH && !ap.devargs_set)
			base_errors_add(errs, EINVAL, "devargs",
				"an eth device needs devargs, e.g. \"net_tap0,iface=tap0\"");
		only_for(errs, ap.devargs_set, cfg->kind == POLICY_KIND_ETH, "devargs", kind);
	}
	if (ap.block_size_set && (cfg->block_size & (cfg->block_size - 1)) != 0)
		base_errors_add(errs, EINVAL, "block_size", "block_size must be a power of two");
	policy_decode(cfg->policy_obj, cfg->kind, &cfg->policy, errs);
	if (cfg->kind >= 0) {
		struct policy_caps caps;

		device_caps_of(cfg, &caps);
		policy_check_attach(&cfg->policy, &caps, errs);
	}
	cfg->policy_obj = NULL;
	return errs->count + errs->dropped == before ? 0 : -EINVAL;
}

void
device_caps_of(const struct device_config *cfg, struct policy_caps *caps)
{
	memset(caps, 0, sizeof(*caps));
	caps->kind = cfg->kind;
	caps->queues = cfg->queues;
	switch (cfg->kind) {
	case POLICY_KIND_NET:
		/* librte_vhost's builtin net path translates through its per-queue IOTLB. */
		caps->can_translate = true;
		break;
	case POLICY_KIND_BLK:
		caps->can_translate = false;
		caps->why_not =
			"vhostd's blk backend walks guest buffers by guest-physical address "
			"and has no IOTLB";
		break;
	default:
		caps->can_translate = false;
		caps->why_not = "an eth device has no guest memory to translate";
		break;
	}
}

json_t *
device_config_to_json(const struct device_config *cfg)
{
	json_t *o = json_pack("{s:s, s:s}", "name", cfg->name, "kind", device_kind_name(cfg->kind));

	if (o == NULL)
		return NULL;
	if (cfg->kind == POLICY_KIND_NET || cfg->kind == POLICY_KIND_BLK) {
		json_object_set_new(o, "socket", json_string(cfg->socket));
		json_object_set_new(o, "mode", json_string(mode_names[cfg->mode]));
	}
	json_object_set_new(o, "queues", json_integer(cfg->queues));
	json_object_set_new(o, "policy", policy_to_json(&cfg->policy, cfg->kind));
	if (cfg->kind == POLICY_KIND_BLK) {
		json_object_set_new(o, "backing", json_string(cfg->backing));
		json_object_set_new(o, "readonly", json_boolean(cfg->readonly));
		json_object_set_new(o, "block_size", json_integer(cfg->block_size));
	}
	if (cfg->kind == POLICY_KIND_ETH)
		json_object_set_new(o, "devargs", json_string(cfg->devargs));
	return o;
}
