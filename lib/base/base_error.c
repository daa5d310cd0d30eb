/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base_error.h"

static void
fill(struct base_error *e, int err, const char *field, const char *fmt, va_list ap)
{
	e->err = err;
	snprintf(e->field, sizeof(e->field), "%s", field != NULL ? field : "");
	vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
}

int
base_error_set(struct base_error *e, int err, const char *field, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fill(e, err, field, fmt, ap);
	va_end(ap);
	return -err;
}

void
base_errors_init(struct base_errors *errs)
{
	errs->count = 0;
	errs->dropped = 0;
}

int
base_errors_add(struct base_errors *errs, int err, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (errs->count == BASE_ERRORS_MAX) {
		errs->dropped++;
		return -err;
	}
	va_start(ap, fmt);
	fill(&errs->list[errs->count++], err, field, fmt, ap);
	va_end(ap);
	return -err;
}

const struct base_error *
base_errors_first(const struct base_errors *errs)
{
	return errs->count > 0 ? &errs->list[0] : NULL;
}

#define NAME(e) [e] = #e
static const char *const errno_names[] = {
	NAME(EPERM),
	NAME(ENOENT),
	NAME(EIO),
	NAME(E2BIG),
	NAME(EBADF),
	NAME(EAGAIN),
	NAME(ENOMEM),
	NAME(EACCES),
	NAME(EFAULT),
	NAME(EBUSY),
	NAME(EEXIST),
	NAME(ENODEV),
	NAME(ENOTDIR),
	NAME(EISDIR),
	NAME(EINVAL),
	NAME(EMFILE),
	NAME(ENOSPC),
	NAME(EROFS),
	NAME(ERANGE),
	NAME(ENAMETOOLONG),
	NAME(ENOSYS),
	NAME(ENOTSUP),
	NAME(EADDRINUSE),
	NAME(ECONNREFUSED),
	NAME(ETIMEDOUT),
	NAME(EBADMSG),
	NAME(EPROTO),
	NAME(EMSGSIZE),
	NAME(ENOTCONN),
	NAME(ENXIO),
	NAME(ESRCH),
	NAME(ENOTSOCK),
	NAME(ECANCELED),
};
#undef NAME

const char *
base_errno_name(int err)
{
	static __thread char other[16];

	if (err > 0 && (size_t)err < sizeof(errno_names) / sizeof(errno_names[0]) &&
		errno_names[err] != NULL)
		return errno_names[err];
	snprintf(other, sizeof(other), "E%d", err);
	return other;
}
