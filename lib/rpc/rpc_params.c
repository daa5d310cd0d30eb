/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Declarative params decoding: a method describes its params as a table (name, type, bounds,
 * where the value goes) and this file does every check, naming the field of each problem.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rpc.h"

static const struct rpc_param *
find_spec(const struct rpc_param *spec, const char *key)
{
	for (; spec->name != NULL; spec++)
		if (strcmp(spec->name, key) == 0)
			return spec;
	return NULL;
}

static void
field_name(char *buf, size_t size, const char *prefix, const char *key)
{
	if (prefix != NULL && prefix[0] != '\0')
		snprintf(buf, size, "%s.%s", prefix, key);
	else
		snprintf(buf, size, "%s", key);
}

static bool
string_chars_ok(const char *s, const char *charset)
{
	for (; *s != '\0'; s++) {
		if (charset != NULL) {
			if (strchr(charset, *s) == NULL)
				return false;
		} else if ((unsigned char)*s < 0x20 || *s == 0x7f) {
			return false;
		}
	}
	return true;
}

static void
list_choices(char *buf, size_t size, const char *const *choices)
{
	size_t used = 0;

	buf[0] = '\0';
	for (; *choices != NULL && used < size; choices++)
		used += snprintf(buf + used, size - used, "%s%s", used ? ", " : "", *choices);
}

static void
decode_one(const struct rpc_param *p, json_t *v, const char *field, void *out,
	struct base_errors *errs)
{
	char *dst = (char *)out + p->offset;
	char choices[160];
	const char *s;
	json_int_t n;
	size_t len, i;
	json_t *item;

	switch (p->type) {
	case RPC_PARAM_STRING:
		if (!json_is_string(v)) {
			base_errors_add(errs, EINVAL, field, "%s must be a string", field);
			return;
		}
		s = json_string_value(v);
		len = json_string_length(v);
		if (len < p->min || len > p->max) {
			base_errors_add(errs, EINVAL, field,
				"%s must be %llu to %llu characters long", field, p->min, p->max);
			return;
		}
		if (strlen(s) != len || !string_chars_ok(s, p->charset)) {
			base_errors_add(errs, EINVAL, field,
				"%s has a character not allowed there%s%s", field,
				p->charset ? "; allowed: " : "", p->charset ? p->charset : "");
			return;
		}
		memcpy(dst, s, len + 1);
		return;
	case RPC_PARAM_UINT:
		if (!json_is_integer(v)) {
			base_errors_add(errs, EINVAL, field, "%s must be an integer", field);
			return;
		}
		n = json_integer_value(v);
		if (n < 0 || (unsigned long long)n < p->min || (unsigned long long)n > p->max) {
			base_errors_add(errs, ERANGE, field,
				"%s must be from %llu to %llu, not %lld", field, p->min, p->max,
				(long long)n);
			return;
		}
		*(uint32_t *)dst = (uint32_t)n;
		return;
	case RPC_PARAM_BOOL:
		if (!json_is_boolean(v)) {
			base_errors_add(errs, EINVAL, field, "%s must be true or false", field);
			return;
		}
		*(bool *)dst = json_is_true(v);
		return;
	case RPC_PARAM_ENUM:
		if (json_is_string(v)) {
			for (i = 0; p->choices[i] != NULL; i++) {
				if (strcmp(p->choices[i], json_string_value(v)) == 0) {
					*(int *)dst = (int)i;
					return;
				}
			}
		}
		list_choices(choices, sizeof(choices), p->choices);
		base_errors_add(errs, EINVAL, field, "%s must be one of: %s", field, choices);
		return;
	case RPC_PARAM_OBJECT:
		if (!json_is_object(v)) {
			base_errors_add(errs, EINVAL, field, "%s must be an object", field);
			return;
		}
		*(json_t **)dst = v;
		return;
	case RPC_PARAM_STRINGS:
		if (!json_is_array(v)) {
			base_errors_add(errs, EINVAL, field, "%s must be a list of strings", field);
			return;
		}
		json_array_foreach(v, i, item)
		{
			if (!json_is_string(item)) {
				base_errors_add(
					errs, EINVAL, field, "%s[%zu] must be a string", field, i);
				return;
			}
		}
		*(json_t **)dst = v;
		return;
	}
}

int
rpc_params_decode(json_t *obj, const struct rpc_param *spec, const char *prefix, void *out,
	struct base_errors *errs)
{
	unsigned int before = errs->count + errs->dropped;
	char field[BASE_ERROR_FIELD_MAX];
	const struct rpc_param *p;
	const char *key;
	json_t *v;

	if (obj != NULL && !json_is_object(obj)) {
		base_errors_add(
			errs, EINVAL, prefix, "%s must be an object", prefix ? prefix : "params");
		return -EINVAL;
	}
	if (obj != NULL) {
		json_object_foreach(obj, key, v)
		{
			if (find_spec(spec, key) == NULL) {
				field_name(field, sizeof(field), prefix, key);
				base_errors_add(errs, EINVAL, field, "unknown key '%s'", field);
			}
		}
	}
	for (p = spec; p->name != NULL; p++) {
		field_name(field, sizeof(field), prefix, p->name);
		v = obj ? json_object_get(obj, p->name) : NULL;
		if (v == NULL || json_is_null(v)) {
			if (p->required)
				base_errors_add(errs, EINVAL, field, "%s is required", field);
			continue;
		}
		decode_one(p, v, field, out, errs);
		if (p->present_offset != 0)
			*(bool *)((char *)out + p->present_offset) = true;
	}
	return errs->count + errs->dropped == before ? 0 : -EINVAL;
}
