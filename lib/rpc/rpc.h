/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_RPC_H
#define VHOSTD_RPC_H

/**
 * @file
 * JSON-RPC 2.0 for vhostd: a method registry and dispatcher that produce the one error format
 * (code, message, data: {errno, field, reason}), stream framing for requests that arrive as
 * complete JSON values on a byte stream, and a Unix socket server that does not own the event
 * loop (its epoll fd is polled by the caller).
 *
 * Error codes: the JSON-RPC ones (-32700 parse, -32600 invalid request, -32601 unknown method,
 * -32602 invalid params, -32603 internal) and application codes derived from the errno of the
 * refusal; see rpc_code_of_errno() and doc/rpc.md.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "base_error.h"

#define RPC_PARSE_ERROR	     -32700
#define RPC_INVALID_REQUEST  -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS   -32602
#define RPC_INTERNAL_ERROR   -32603
/* Application errors, chosen by errno (data.errno tells the exact one). */
#define RPC_SERVER_ERROR  -32000 /* any errno without a code of its own */
#define RPC_NOT_FOUND	  -32001 /* ENOENT, ENODEV */
#define RPC_EXISTS	  -32002 /* EEXIST */
#define RPC_BUSY	  -32003 /* EBUSY, EADDRINUSE */
#define RPC_REFUSED	  -32004 /* EPERM, EACCES, EROFS */
#define RPC_LIMIT	  -32005 /* ENOSPC, E2BIG, EMFILE */
#define RPC_NOT_SUPPORTED -32006 /* ENOTSUP */

/**
 * A method handler. @p params is the request's params (an object; an empty object when the
 * request had none). On success it sets *result (a new reference) and returns 0; on failure it
 * fills @p err and returns -err->err. A refused request must have changed nothing.
 */
typedef int (*rpc_handler_fn)(void *ctx, json_t *params, json_t **result, struct base_error *err);

struct rpc_registry;

/** @return a new, empty registry, or NULL with errno set. */
struct rpc_registry *rpc_registry_create(void);
void rpc_registry_destroy(struct rpc_registry *reg);

/**
 * Register @p name. @p ctx is passed to the handler unchanged.
 * @return 0, -EEXIST if the name is taken, -ENOMEM.
 */
int rpc_register(struct rpc_registry *reg, const char *name, rpc_handler_fn handler, void *ctx);

/** @return the registered method names as a JSON array of strings (new reference). */
json_t *rpc_method_names(const struct rpc_registry *reg);

/**
 * Process one request or batch. @return the response (a new reference), or NULL when nothing
 * is to be sent back (a notification, or a batch of notifications).
 */
json_t *rpc_process(struct rpc_registry *reg, json_t *request);

/** @return the JSON-RPC error code that stands for a refusal with errno @p err. */
int rpc_code_of_errno(int err);

/** @return an error response {jsonrpc, id, error: {code, message, data}} (new reference). */
json_t *rpc_error_response(json_t *id, int code, const struct base_error *err);

/* ---- stream framing ---- */

struct rpc_framer;

/** @return a framer that refuses any single value larger than @p max_bytes. */
struct rpc_framer *rpc_framer_create(size_t max_bytes);
void rpc_framer_destroy(struct rpc_framer *fr);

/** Append received bytes. @return 0, -EMSGSIZE when the pending value grows past the limit. */
int rpc_framer_feed(struct rpc_framer *fr, const void *data, size_t len);

/**
 * Take the next complete JSON value out of the stream.
 * @return 1 and *value set (new reference); 0 when more bytes are needed; -EBADMSG when the
 *   stream holds malformed JSON (@p err says where; the framer then discards what it holds).
 */
int rpc_framer_next(struct rpc_framer *fr, json_t **value, struct base_error *err);

/** @return true when bytes other than whitespace are waiting for the rest of their value. */
bool rpc_framer_pending(const struct rpc_framer *fr);

/* ---- declarative params decoding ---- */

enum rpc_param_type {
	RPC_PARAM_STRING,  /**< char[] of size `max + 1` at offset; min/max bound its length */
	RPC_PARAM_UINT,	   /**< uint32_t at offset, within [min, max] */
	RPC_PARAM_BOOL,	   /**< bool at offset */
	RPC_PARAM_ENUM,	   /**< int at offset: the index of the value in `choices` */
	RPC_PARAM_OBJECT,  /**< json_t * (borrowed) at offset; decoded by its owner */
	RPC_PARAM_STRINGS, /**< json_t * (borrowed) array of strings at offset */
};

struct rpc_param {
	const char *name;
	enum rpc_param_type type;
	bool required;
	size_t offset;		     /**< where the value goes in the output struct */
	unsigned long long min, max; /**< UINT range, or STRING length range */
	const char *const *choices;  /**< ENUM: NULL-terminated list */
	const char *charset;	     /**< STRING: allowed characters, NULL for any printable */
	size_t present_offset;	     /**< if nonzero, a bool set true when the key was given */
};

/**
 * Decode @p obj (an object, or NULL for "no params") by @p spec, terminated by an entry with a
 * NULL name. Keys not in the spec are refused. Every problem is appended to @p errs with its
 * field named "<prefix>.<key>" (or "<key>" when prefix is NULL); decoding goes on after a
 * problem so that a validation can report them all.
 *
 * @return 0 when no problem was found, -EINVAL otherwise.
 */
int rpc_params_decode(json_t *obj, const struct rpc_param *spec, const char *prefix, void *out,
	struct base_errors *errs);

/* ---- Unix socket server ---- */

struct rpc_server_opts {
	const char *path; /**< socket path; "<path>.lock" guards it */
	mode_t mode;	  /**< permission bits for the socket, e.g. 0660 */
	uid_t owner;	  /**< (uid_t)-1 to leave as is */
	gid_t group;	  /**< (gid_t)-1 to leave as is */
};

struct rpc_server;

/**
 * Take the lock file, replace a stale socket, listen. Fails with errno EADDRINUSE when another
 * process holds the lock (a second daemon on the same socket), leaving that daemon's socket alone.
 * @return the server, or NULL with errno set and @p err filled.
 */
struct rpc_server *rpc_server_create(
	const struct rpc_server_opts *opts, struct rpc_registry *reg, struct base_error *err);

/** Close every connection, remove the socket file, release the lock. */
void rpc_server_destroy(struct rpc_server *srv);

/** @return an fd that becomes readable when the server has work: add it to the caller's epoll. */
int rpc_server_fd(const struct rpc_server *srv);

/** Serve whatever is ready without blocking. */
void rpc_server_poll(struct rpc_server *srv);

/* ---- client ---- */

/** @return a connected stream socket to @p path, or -errno. */
int rpc_client_connect(const char *path);

/**
 * Send @p request on @p fd and wait up to @p timeout_ms for one complete JSON value back.
 * @return 0 with *response set (new reference), or -errno (-ETIMEDOUT, -EBADMSG, -ECONNRESET).
 */
int rpc_client_call(int fd, json_t *request, int timeout_ms, json_t **response);

#endif /* VHOSTD_RPC_H */
