/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_POLICY_H
#define VHOSTD_POLICY_H

/**
 * @file
 * Device policy: decoded from the `policy` object of device_attach, checked against what the
 * device kind can do at attach time, and against what a frontend negotiated at session time.
 * Pure functions: no EAL, no sockets, so every rule is unit-tested directly.
 *
 * The ACCESS_PLATFORM rule (design.md section 3): offering bit 33 and translating addresses are
 * different things. `platform` offers bit 33 on every kind and is never refused at attach;
 * `translate`/`required` are refused at attach only where the device cannot translate.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base_error.h"

#define POLICY_F_ACCESS_PLATFORM_BIT 33
#define POLICY_F_ACCESS_PLATFORM     (1ULL << POLICY_F_ACCESS_PLATFORM_BIT)

/* vhost-user protocol features a translating session needs (QEMU refuses bit 33 without them). */
#define POLICY_PROTOCOL_F_REPLY_ACK   3
#define POLICY_PROTOCOL_F_BACKEND_REQ 5

enum policy_iommu {
	POLICY_IOMMU_OFF,	/**< never offer bit 33 */
	POLICY_IOMMU_PLATFORM,	/**< offer bit 33; serve translation only where the kind can */
	POLICY_IOMMU_TRANSLATE, /**< offer bit 33 with IOTLB; the kind must be able to translate */
	POLICY_IOMMU_REQUIRED,	/**< as translate, and a session without bit 33 is refused */
};

/** Device kinds, as the policy rules see them. */
enum policy_kind {
	POLICY_KIND_NET,
	POLICY_KIND_BLK,
	POLICY_KIND_ETH,
};

struct policy {
	int iommu;		/**< enum policy_iommu */
	uint32_t max_queues;	/**< the most queues (pairs for net) the device may have */
	uint32_t mtu;		/**< largest frame payload accepted; 0 = no limit */
	bool offloads;		/**< offer checksum/TSO offloads to the frontend */
	uint64_t features_deny; /**< virtio feature bits never offered */
};

/** What a device, as configured, can do: the attach-time input of the rules. */
struct policy_caps {
	enum policy_kind kind;
	uint32_t queues;     /**< queues requested at attach */
	bool can_translate;  /**< the device can translate IOVAs through an IOTLB */
	const char *why_not; /**< when it cannot: a reason a person understands */
};

/** What a frontend negotiated: the session-time input of the rules. */
struct policy_session {
	uint64_t features;	    /**< from SET_FEATURES */
	uint64_t protocol_features; /**< from SET_PROTOCOL_FEATURES */
	uint32_t queues;	    /**< queues (pairs for net) the frontend set up */
	uint32_t mtu;		    /**< MTU the frontend set (VHOST_USER_NET_SET_MTU); 0 if none */
};

/** Fill @p p with the defaults (iommu off, no limits, offloads off, nothing denied). */
void policy_init(struct policy *p);

/**
 * Decode a `policy` object (NULL for the defaults) for a device of @p kind into @p p. Feature
 * names in features_deny are those of @p kind; pass a negative kind when the kind itself was
 * invalid, to check everything else. Unknown keys and bad values are appended to @p errs, each
 * naming its field ("policy.iommu").
 * @return 0, or -EINVAL when any problem was found.
 */
int policy_decode(json_t *obj, int kind, struct policy *p, struct base_errors *errs);

/** @return @p p as the JSON object policy_decode() reads (new reference). */
json_t *policy_to_json(const struct policy *p, enum policy_kind kind);

/**
 * Check @p p against what the device can do. Every problem goes to @p errs.
 * @return 0, or the negative errno of the first problem.
 */
int policy_check_attach(
	const struct policy *p, const struct policy_caps *caps, struct base_errors *errs);

/**
 * @return the virtio feature bits to offer, starting from what the kind supports
 * (@p supported), after denials, offloads and the iommu mode.
 */
uint64_t policy_features_offered(const struct policy *p, enum policy_kind kind, uint64_t supported);

/** @return the feature bits that `offloads: false` withholds for @p kind. */
uint64_t policy_offload_features(enum policy_kind kind);

/**
 * Check a negotiated session against the policy.
 * @return true if it may run; false with @p reason filled (a sentence for device_get and the log).
 */
bool policy_check_session(const struct policy *p, const struct policy_caps *caps,
	const struct policy_session *s, char *reason, size_t reason_size);

/** @return true when the session translates addresses: bit 33 arrived in SET_FEATURES. */
static inline bool
policy_session_translates(const struct policy_session *s)
{
	return (s->features & POLICY_F_ACCESS_PLATFORM) != 0;
}

/** @return the name of an iommu mode ("platform"). */
const char *policy_iommu_name(int mode);

/**
 * Look up a feature name valid for @p kind ("MRG_RXBUF", "ACCESS_PLATFORM").
 * @return its bit number, or -ENOENT.
 */
int policy_feature_bit(enum policy_kind kind, const char *name);

/** @return the name of feature @p bit for @p kind, or NULL. */
const char *policy_feature_name(enum policy_kind kind, unsigned int bit);

#endif /* VHOSTD_POLICY_H */
