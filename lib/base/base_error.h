/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_BASE_ERROR_H
#define VHOSTD_BASE_ERROR_H

/**
 * @file
 * One error shape for every refusal vhostd makes: an errno, the request field at fault, and a
 * sentence for a person. RPC replies, validation reports and log lines are all built from it.
 */

#include <stdbool.h>

#define BASE_ERROR_FIELD_MAX  64
#define BASE_ERROR_REASON_MAX 256
/* A validation report lists at most this many problems: past that the request is hopeless. */
#define BASE_ERRORS_MAX 16

struct base_error {
	int err;			  /**< positive errno value, 0 when unset */
	char field[BASE_ERROR_FIELD_MAX]; /**< e.g. "policy.iommu"; empty when no field is at fault
					   */
	char reason[BASE_ERROR_REASON_MAX];
};

/** Several problems found in one request, in the order they were found. */
struct base_errors {
	unsigned int count;
	unsigned int dropped; /**< problems past BASE_ERRORS_MAX, counted but not kept */
	struct base_error list[BASE_ERRORS_MAX];
};

/**
 * Fill @p e. Format the reason printf-style.
 *
 * @return
 *   -err, so that a caller can write `return base_error_set(e, EINVAL, ...);`
 */
int base_error_set(struct base_error *e, int err, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/** Append one problem to @p errs. @return -err. */
int base_errors_add(struct base_errors *errs, int err, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/** Reset @p errs to empty. */
void base_errors_init(struct base_errors *errs);

/** @return the first problem of @p errs (the one a single-error reply names), or NULL. */
const struct base_error *base_errors_first(const struct base_errors *errs);

/** @return the symbolic name of @p err ("EINVAL"), or "E<number>" for one we do not name. */
const char *base_errno_name(int err);

#endif /* VHOSTD_BASE_ERROR_H */
