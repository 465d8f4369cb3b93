/*
 * config.c — reading, checking and writing hp.cfg (see config.h).
 *
 * One table per JSON object lists HotPocket's field names with their type,
 * range and place in struct hp_config; the loader walks the parsed file
 * against it and the writer walks the struct with the same table, so the
 * two cannot drift apart. Fields missing from the file keep the defaults set
 * by hp_config_defaults(). Every problem is reported as one line "NAME:
 * FIELD: RULE, got VALUE" and checking goes on, so a user sees all of them
 * at once. Private key text is never echoed and is wiped from every buffer
 * we own (file contents, jansson's copy, the struct) before it is freed.
 */
#include "config.h"
#include "err.h"
#include "keys.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_MAX_FILE	(1024 * 1024)	/* bytes; larger files are refused */
#define CFG_MAX_ARRAY	1024		/* unl, known_peers, environment */
#define CFG_MAX_DIAGS	100		/* lines reported before giving up */
#define CFG_DEFAULT_MSG	(5 * 1024 * 1024)	/* max_bytes_per_msg 0 */
#define CFG_ANY		((uint64_t)INT64_MAX)	/* no upper bound */
#define CFG_SHOW_MAX	80		/* characters of a value shown */
#define CFG_SHOW_SIZE	(4 * CFG_SHOW_MAX + 32)
#define CFG_PATH_SIZE	(4 * CFG_SHOW_MAX + 64)

#define RULE_PK		"must be a public key " \
			"(\"ed\" followed by 64 hex digits)"
#define RULE_SK		"must be a private key " \
			"(\"ed\" followed by 128 hex digits)"
#define RULE_UUID	"must be a UUID (8-4-4-4-12 hex digits)"
#define RULE_RUN_AS	"must be \"\" or \"uid:gid\" with numeric ids"
#define RULE_VERSION	"must be a version number (digits and dots) of at " \
			"least " HP_MIN_CONFIG_VERSION
#define RULE_PEER	"must be \"host:port\" with a port from 1 to 65535"
#define FIX_KEYS	"run `hpd rekey DIR` to create the node's key pair"
#define FIX_ID		"set a UUID, e.g. from " \
			"`cat /proc/sys/kernel/random/uuid`"

struct ctx {
	const char *name;		/* file name shown in messages */
	hp_config_report_fn report;
	void *arg;
	struct hp_config *cfg;
	int errors;
	int diags;
	int public_only;	/* no node.private_key: workers other than consensus */
};

enum kind { K_END, K_SECTION, K_BOOL, K_UINT, K_ENUM, K_STRING, K_CUSTOM };

#define FL_SECRET	0x1	/* never show the value */
#define FL_LOWER	0x2	/* store lower-cased */
#define FL_MSGSIZE	0x4	/* 0 means CFG_DEFAULT_MSG */

struct field {
	const char *key;
	enum kind kind;
	size_t off;			/* member of struct hp_config */
	size_t size;			/* its size (K_UINT: 2 or 8) */
	uint64_t min, max;		/* K_UINT */
	const char *const *names;	/* K_ENUM, index = value */
	bool (*valid)(const char *);	/* K_STRING, NULL = any */
	const char *rule;		/* K_STRING */
	const struct field *sub;	/* K_SECTION */
	int (*parse)(struct ctx *, const char *, json_t *);	/* K_CUSTOM */
	int (*emit)(const struct hp_config *, json_t **);	/* K_CUSTOM */
	unsigned flags;
};

static void
diag(struct ctx *c, enum hp_config_diag sev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
diag(struct ctx *c, enum hp_config_diag sev, const char *fmt, ...)
{
	char msg[PATH_MAX + 1024];
	va_list ap;
	int n;

	if (sev == HP_CONFIG_ERROR)
		c->errors++;
	if (c->report == NULL || c->diags > CFG_MAX_DIAGS)
		return;
	if (c->diags++ == CFG_MAX_DIAGS) {
		snprintf(msg, sizeof(msg), "%s: more than %d problems, the "
		    "rest are not shown", c->name, CFG_MAX_DIAGS);
		c->report(sev, msg, c->arg);
		return;
	}
	n = snprintf(msg, sizeof(msg), "%s: ", c->name);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(msg) / 2)
		n = sizeof(msg) / 2;
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	c->report(sev, msg, c->arg);
}

/* Printable ASCII as is, the rest as \xNN; at most max input bytes. */
static void
escape(const char *s, size_t len, size_t max, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < len && i < max && o + 5 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch >= 0x20 && ch < 0x7f) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 0xf];
		}
	}
	if (i < len && o + 4 <= size) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/*
 * Describe a JSON value for a message. typed adds the JSON type name, for
 * errors about a value of the wrong type.
 */
static const char *
show(const json_t *v, bool typed, char buf[CFG_SHOW_SIZE])
{
	char tmp[CFG_SHOW_SIZE - 16];

	switch (json_typeof(v)) {
	case JSON_STRING:
		escape(json_string_value(v), json_string_length(v),
		    CFG_SHOW_MAX, tmp, sizeof(tmp));
		snprintf(buf, CFG_SHOW_SIZE, "%s\"%s\"", typed ? "string " : "",
		    tmp);
		break;
	case JSON_INTEGER:
		snprintf(buf, CFG_SHOW_SIZE, "%s%lld", typed ? "integer " : "",
		    (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(tmp, sizeof(tmp), "%.15g", json_real_value(v));
		snprintf(buf, CFG_SHOW_SIZE, "real number %s%s", tmp,
		    strpbrk(tmp, ".eEni") == NULL ? ".0" : "");
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		snprintf(buf, CFG_SHOW_SIZE, "%s%s", typed ? "boolean " : "",
		    json_is_true(v) ? "true" : "false");
		break;
	case JSON_NULL:
		snprintf(buf, CFG_SHOW_SIZE, "null");
		break;
	case JSON_OBJECT:
		snprintf(buf, CFG_SHOW_SIZE, "object");
		break;
	case JSON_ARRAY:
		snprintf(buf, CFG_SHOW_SIZE, "array");
		break;
	}
	return buf;
}

static void
bad(struct ctx *c, const char *path, const char *rule, const json_t *v,
    bool typed)
{
	char buf[CFG_SHOW_SIZE];

	diag(c, HP_CONFIG_ERROR, "%s: %s, got %s", path, rule,
	    show(v, typed, buf));
}

/* As bad(), but for a secret: say what kind of value, never what it is. */
static void
bad_secret(struct ctx *c, const char *path, const char *rule, const json_t *v)
{
	if (json_is_string(v))
		diag(c, HP_CONFIG_ERROR, "%s: %s, got a string of %zu "
		    "characters (not shown)", path, rule,
		    json_string_length(v));
	else
		bad(c, path, rule, v, true);
}

static void
wipe_str(char *s)
{
	if (s != NULL)
		sodium_memzero(s, strlen(s));
}

/* Wipe the private key text inside a jansson tree before it is freed. */
static void
wipe_json_secret(json_t *root)
{
	json_t *v;

	v = json_object_get(json_object_get(root, "node"), "private_key");
	if (json_is_string(v))
		sodium_memzero((char *)json_string_value(v),
		    json_string_length(v));
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static bool
is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
	    (ch >= 'A' && ch <= 'F');
}

/* String validators for K_STRING fields. */

static bool
pubkey_ok(const char *s)
{
	uint8_t pk[HP_PK_BYTES];

	return hp_pubkey_from_hex(s, pk) == 0;
}

static bool
seckey_ok(const char *s)
{
	uint8_t sk[HP_SK_BYTES];
	bool ok;

	ok = hp_seckey_from_hex(s, sk) == 0;
	sodium_memzero(sk, sizeof(sk));
	return ok;
}

static bool
uuid_ok(const char *s)
{
	size_t i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!is_hex(s[i]))
			return false;
	}
	return true;
}

/* A decimal id of 1 to 10 digits below 2^32 - 1 ((uid_t)-1 is no id). */
static const char *
numeric_id(const char *s)
{
	uint64_t v = 0;
	size_t n = 0;

	while (s[n] >= '0' && s[n] <= '9' && n < 11)
		v = v * 10 + (uint64_t)(s[n++] - '0');
	if (n == 0 || n > 10 || v >= UINT32_MAX)
		return NULL;
	return s + n;
}

static bool
run_as_ok(const char *s)
{
	if (*s == '\0')
		return true;
	s = numeric_id(s);
	if (s == NULL || *s++ != ':')
		return false;
	s = numeric_id(s);
	return s != NULL && *s == '\0';
}

static bool
nonempty_ok(const char *s)
{
	return *s != '\0';
}

/*
 * Compare dotted decimal versions ("0.6.10" > "0.6.3"); a missing part
 * counts as 0. Returns -2 when a is not such a version.
 */
static int
version_cmp(const char *a, const char *b)
{
	while (*a != '\0' || *b != '\0') {
		uint64_t x = 0, y = 0;
		size_t n = 0;

		while (*a >= '0' && *a <= '9' && n++ < 9)
			x = x * 10 + (uint64_t)(*a++ - '0');
		if ((n == 0 && *a != '\0') || n > 9 ||
		    (*a != '\0' && *a != '.') || (*a == '.' && a[1] == '\0'))
			return -2;
		while (*b >= '0' && *b <= '9')
			y = y * 10 + (uint64_t)(*b++ - '0');
		if (x != y)
			return x < y ? -1 : 1;
		if (*a == '.')
			a++;
		if (*b == '.')
			b++;
	}
	return 0;
}

static bool
version_ok(const char *s)
{
	return *s != '\0' && version_cmp(s, HP_MIN_CONFIG_VERSION) >= 0;
}

/* Read a JSON integer in [min, max]; reports and returns false otherwise. */
static bool
get_uint(struct ctx *c, const char *path, const json_t *v, uint64_t min,
    uint64_t max, uint64_t *out)
{
	char rule[96];
	json_int_t i;

	if (max == CFG_ANY && min == 0)
		snprintf(rule, sizeof(rule), "must be a non-negative integer");
	else
		snprintf(rule, sizeof(rule), "must be an integer from %llu to "
		    "%llu", (unsigned long long)min, (unsigned long long)max);
	if (!json_is_integer(v)) {
		bad(c, path, rule, v, true);
		return false;
	}
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max) {
		bad(c, path, rule, v, false);
		return false;
	}
	*out = (uint64_t)i;
	return true;
}

static void
enum_rule(const char *const *names, char *buf, size_t size)
{
	size_t n, i, o;

	for (n = 0; names[n] != NULL; n++)
		;
	o = (size_t)snprintf(buf, size, n == 2 ? "must be" : "must be one of");
	for (i = 0; i < n && o < size; i++)
		o += (size_t)snprintf(buf + o, size - o, "%s \"%s\"",
		    i == 0 ? "" : n == 2 ? " or" : ",", names[i]);
}

static int walk(struct ctx *, const struct field *, const char *, json_t *);

static int
parse_field(struct ctx *c, const struct field *f, const char *path, json_t *v)
{
	char *p = (char *)c->cfg + f->off;
	char rule[96];
	uint64_t u;
	size_t i;
	char *s;

	switch (f->kind) {
	case K_SECTION:
		if (!json_is_object(v)) {
			bad(c, path, "must be an object", v, true);
			return 0;
		}
		return walk(c, f->sub, path, v);
	case K_BOOL:
		if (!json_is_boolean(v))
			bad(c, path, "must be a boolean (true or false)", v,
			    true);
		else
			*(bool *)p = json_is_true(v);
		return 0;
	case K_UINT:
		if (!get_uint(c, path, v, f->min, f->max, &u))
			return 0;
		if (u == 0 && (f->flags & FL_MSGSIZE))
			u = CFG_DEFAULT_MSG;
		if (f->size == sizeof(uint16_t))
			*(uint16_t *)p = (uint16_t)u;
		else
			*(uint64_t *)p = u;
		return 0;
	case K_ENUM:
		enum_rule(f->names, rule, sizeof(rule));
		if (!json_is_string(v)) {
			bad(c, path, rule, v, true);
			return 0;
		}
		for (i = 0; f->names[i] != NULL; i++)
			if (strcmp(json_string_value(v), f->names[i]) == 0)
				break;
		if (f->names[i] == NULL)
			bad(c, path, rule, v, false);
		else
			*(int *)p = (int)i;
		return 0;
	case K_STRING:
		if (!json_is_string(v) || (f->valid != NULL &&
		    !f->valid(json_string_value(v)))) {
			if (f->flags & FL_SECRET)
				bad_secret(c, path, f->rule, v);
			else
				bad(c, path, f->rule, v, !json_is_string(v));
			return 0;
		}
		if ((s = strdup(json_string_value(v))) == NULL)
			return HP_ENOMEM;
		if (f->flags & FL_LOWER)
			lower(s);
		if (f->flags & FL_SECRET)
			wipe_str(*(char **)p);
		free(*(char **)p);
		*(char **)p = s;
		return 0;
	case K_CUSTOM:
		return f->parse(c, path, v);
	case K_END:
		break;
	}
	return 0;
}

static const struct field *
lookup(const struct field *tab, const char *key)
{
	for (; tab->kind != K_END; tab++)
		if (strcmp(tab->key, key) == 0)
			return tab;
	return NULL;
}

/* Check every member of obj against tab, in file order. */
static int
walk(struct ctx *c, const struct field *tab, const char *prefix, json_t *obj)
{
	char path[CFG_PATH_SIZE], esc[CFG_SHOW_SIZE];
	const struct field *f;
	const char *key;
	json_t *v;
	int rc;

	json_object_foreach(obj, key, v) {
		if ((f = lookup(tab, key)) == NULL) {
			escape(key, strlen(key), CFG_SHOW_MAX, esc,
			    sizeof(esc));
			diag(c, HP_CONFIG_WARNING, "%s%s%s: unknown key, "
			    "ignored", prefix, *prefix != '\0' ? "." : "", esc);
			continue;
		}
		snprintf(path, sizeof(path), "%s%s%s", prefix,
		    *prefix != '\0' ? "." : "", key);
		if ((rc = parse_field(c, f, path, v)) != 0)
			return rc;
	}
	return 0;
}

/* contract.unl: non-empty array of public keys, lower-cased, sorted, unique. */

struct unl_entry {
	char *hex;
	size_t idx;
};

static int
unl_entry_cmp(const void *a, const void *b)
{
	const struct unl_entry *x = a, *y = b;
	int r = strcmp(x->hex, y->hex);

	if (r != 0)
		return r;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int
parse_unl(struct ctx *c, const char *path, json_t *v)
{
	struct unl_entry *e;
	size_t n, i, first, ok = 0;
	int errors = c->errors, rc = 0;
	char **unl;
	json_t *x;

	if (!json_is_array(v)) {
		bad(c, path, "must be a non-empty array of public keys", v,
		    true);
		return 0;
	}
	n = json_array_size(v);
	if (n == 0) {
		diag(c, HP_CONFIG_ERROR, "%s: must be a non-empty array of "
		    "public keys, got []", path);
		return 0;
	}
	if (n > CFG_MAX_ARRAY) {
		diag(c, HP_CONFIG_ERROR, "%s: must have at most %d entries, "
		    "got %zu", path, CFG_MAX_ARRAY, n);
		return 0;
	}
	if ((e = calloc(n, sizeof(*e))) == NULL)
		return HP_ENOMEM;
	json_array_foreach(v, i, x) {
		char ipath[CFG_PATH_SIZE];

		if (!json_is_string(x) || !pubkey_ok(json_string_value(x))) {
			snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
			bad(c, ipath, RULE_PK, x, !json_is_string(x));
			continue;
		}
		if ((e[ok].hex = strdup(json_string_value(x))) == NULL) {
			rc = HP_ENOMEM;
			goto out;
		}
		lower(e[ok].hex);
		e[ok++].idx = i;
	}
	qsort(e, ok, sizeof(*e), unl_entry_cmp);
	for (i = 1, first = 0; i < ok; i++) {
		if (strcmp(e[i].hex, e[first].hex) != 0) {
			first = i;
			continue;
		}
		diag(c, HP_CONFIG_ERROR, "%s[%zu]: must not repeat %s[%zu], "
		    "got \"%s\"", path, e[i].idx, path, e[first].idx, e[i].hex);
	}
	if (c->errors != errors)
		goto out;
	if ((unl = calloc(n, sizeof(*unl))) == NULL) {
		rc = HP_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		unl[i] = e[i].hex;
		e[i].hex = NULL;
	}
	free_strv(c->cfg->contract.unl, c->cfg->contract.unl_count);
	c->cfg->contract.unl = unl;
	c->cfg->contract.unl_count = n;
out:
	for (i = 0; i < ok; i++)
		free(e[i].hex);
	free(e);
	return rc;
}

static int
emit_unl(const struct hp_config *cfg, json_t **out)
{
	json_t *a;
	size_t i;

	if ((a = json_array()) == NULL)
		return HP_ENOMEM;
	for (i = 0; i < cfg->contract.unl_count; i++)
		if (json_array_append_new(a,
		    json_string(cfg->contract.unl[i])) != 0) {
			json_decref(a);
			return HP_EINVAL;
		}
	*out = a;
	return 0;
}

/* contract.environment: object of string → string, sorted by key. */

static int
env_cmp(const void *a, const void *b)
{
	return strcmp(((const struct hp_env_var *)a)->key,
	    ((const struct hp_env_var *)b)->key);
}

static void
free_env(struct hp_env_var *env, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(env[i].key);
		free(env[i].value);
	}
	free(env);
}

static int
parse_environment(struct ctx *c, const char *path, json_t *v)
{
	char vpath[CFG_PATH_SIZE], esc[CFG_SHOW_SIZE];
	struct hp_env_var *env;
	const char *key;
	size_t n, ok = 0;
	int errors = c->errors;
	json_t *x;

	if (!json_is_object(v)) {
		bad(c, path, "must be an object of string values", v, true);
		return 0;
	}
	n = json_object_size(v);
	if (n > CFG_MAX_ARRAY) {
		diag(c, HP_CONFIG_ERROR, "%s: must have at most %d entries, "
		    "got %zu", path, CFG_MAX_ARRAY, n);
		return 0;
	}
	if ((env = calloc(n + 1, sizeof(*env))) == NULL)
		return HP_ENOMEM;
	json_object_foreach(v, key, x) {
		escape(key, strlen(key), CFG_SHOW_MAX, esc, sizeof(esc));
		snprintf(vpath, sizeof(vpath), "%s.%s", path, esc);
		if (*key == '\0' || strchr(key, '=') != NULL) {
			diag(c, HP_CONFIG_ERROR, "%s: variable names must be "
			    "non-empty and must not contain '=', got \"%s\"",
			    path, esc);
			continue;
		}
		if (!json_is_string(x)) {
			bad(c, vpath, "must be a string", x, true);
			continue;
		}
		if ((env[ok].key = strdup(key)) == NULL ||
		    (env[ok].value = strdup(json_string_value(x))) == NULL) {
			free_env(env, ok + 1);
			return HP_ENOMEM;
		}
		ok++;
	}
	if (c->errors != errors) {
		free_env(env, ok);
		return 0;
	}
	qsort(env, ok, sizeof(*env), env_cmp);
	free_env(c->cfg->contract.environment,
	    c->cfg->contract.environment_count);
	c->cfg->contract.environment = env;
	c->cfg->contract.environment_count = ok;
	return 0;
}

static int
emit_environment(const struct hp_config *cfg, json_t **out)
{
	json_t *o;
	size_t i;

	if ((o = json_object()) == NULL)
		return HP_ENOMEM;
	for (i = 0; i < cfg->contract.environment_count; i++)
		if (json_object_set_new(o, cfg->contract.environment[i].key,
		    json_string(cfg->contract.environment[i].value)) != 0) {
			json_decref(o);
			return HP_EINVAL;
		}
	*out = o;
	return 0;
}

/* mesh.known_peers: array of "host:port". */

static bool
split_peer(const char *s, size_t *hostlen, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	unsigned long p = 0;
	const char *q;

	if (colon == NULL || colon == s || colon[1] == '\0')
		return false;
	for (q = s; q < colon; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
			return false;
	for (q = colon + 1; *q != '\0'; q++) {
		if (*q < '0' || *q > '9' || q - colon > 5)
			return false;
		p = p * 10 + (unsigned long)(*q - '0');
	}
	if (p < 1 || p > 65535)
		return false;
	*hostlen = (size_t)(colon - s);
	*port = (uint16_t)p;
	return true;
}

static void
free_peers(struct hp_peer_addr *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(p[i].host);
	free(p);
}

static int
parse_known_peers(struct ctx *c, const char *path, json_t *v)
{
	struct hp_peer_addr *peers;
	size_t n, i, hostlen, ok = 0;
	uint16_t port;
	json_t *x;

	if (!json_is_array(v)) {
		bad(c, path, "must be an array of \"host:port\" strings", v,
		    true);
		return 0;
	}
	n = json_array_size(v);
	if (n > CFG_MAX_ARRAY) {
		diag(c, HP_CONFIG_ERROR, "%s: must have at most %d entries, "
		    "got %zu", path, CFG_MAX_ARRAY, n);
		return 0;
	}
	if ((peers = calloc(n + 1, sizeof(*peers))) == NULL)
		return HP_ENOMEM;
	json_array_foreach(v, i, x) {
		char ipath[CFG_PATH_SIZE];

		if (!json_is_string(x) ||
		    !split_peer(json_string_value(x), &hostlen, &port)) {
			snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
			bad(c, ipath, RULE_PEER, x, !json_is_string(x));
			continue;
		}
		peers[ok].host = strndup(json_string_value(x), hostlen);
		if (peers[ok].host == NULL) {
			free_peers(peers, ok);
			return HP_ENOMEM;
		}
		peers[ok++].port = port;
	}
	if (ok != n) {
		free_peers(peers, ok);
		return 0;
	}
	free_peers(c->cfg->mesh.known_peers, c->cfg->mesh.known_peers_count);
	c->cfg->mesh.known_peers = peers;
	c->cfg->mesh.known_peers_count = n;
	return 0;
}

static int
emit_known_peers(const struct hp_config *cfg, json_t **out)
{
	char buf[1024];
	json_t *a;
	size_t i;

	if ((a = json_array()) == NULL)
		return HP_ENOMEM;
	for (i = 0; i < cfg->mesh.known_peers_count; i++) {
		const struct hp_peer_addr *p = &cfg->mesh.known_peers[i];
		int n = snprintf(buf, sizeof(buf), "%s:%u", p->host,
		    (unsigned)p->port);

		if (n < 0 || (size_t)n >= sizeof(buf) ||
		    json_array_append_new(a, json_string(buf)) != 0) {
			json_decref(a);
			return HP_EINVAL;
		}
	}
	*out = a;
	return 0;
}

/* log.loggers: array of "console" and "file". */

static int
parse_loggers(struct ctx *c, const char *path, json_t *v)
{
	static const char rule[] = "must be \"console\" or \"file\"";
	bool console = false, file = false;
	int errors = c->errors;
	size_t i;
	json_t *x;

	if (!json_is_array(v)) {
		bad(c, path, "must be an array of \"console\" and \"file\"", v,
		    true);
		return 0;
	}
	json_array_foreach(v, i, x) {
		char ipath[CFG_PATH_SIZE];

		if (json_is_string(x) &&
		    strcmp(json_string_value(x), "console") == 0)
			console = true;
		else if (json_is_string(x) &&
		    strcmp(json_string_value(x), "file") == 0)
			file = true;
		else {
			snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
			bad(c, ipath, rule, x, !json_is_string(x));
		}
	}
	if (c->errors == errors) {
		c->cfg->log.log_console = console;
		c->cfg->log.log_file = file;
	}
	return 0;
}

static int
emit_loggers(const struct hp_config *cfg, json_t **out)
{
	json_t *a;

	if ((a = json_array()) == NULL)
		return HP_ENOMEM;
	if ((cfg->log.log_console &&
	    json_array_append_new(a, json_string("console")) != 0) ||
	    (cfg->log.log_file &&
	    json_array_append_new(a, json_string("file")) != 0)) {
		json_decref(a);
		return HP_ENOMEM;
	}
	*out = a;
	return 0;
}

/* The tables: HotPocket's names and the order in which hp.cfg is written. */

static const char *const role_names[] = { "validator", "observer", NULL };
static const char *const history_names[] = { "custom", "full", NULL };
static const char *const mode_names[] = { "private", "public", NULL };
static const char *const level_names[] = { "dbg", "inf", "wrn", "err", NULL };

#define AT(m)	.off = offsetof(struct hp_config, m), \
		.size = sizeof(((struct hp_config *)0)->m)
#define F_SECTION(k, t)	{ .key = (k), .kind = K_SECTION, .sub = (t) }
#define F_BOOL(k, m)	{ .key = (k), .kind = K_BOOL, AT(m) }
#define F_UINT(k, m, lo, hi) \
	{ .key = (k), .kind = K_UINT, AT(m), .min = (lo), .max = (hi) }
#define F_MSGSIZE(k, m)	\
	{ .key = (k), .kind = K_UINT, AT(m), .max = CFG_ANY, \
	  .flags = FL_MSGSIZE }
#define F_ENUM(k, m, n)	{ .key = (k), .kind = K_ENUM, AT(m), .names = (n) }
#define F_STR(k, m, ok, r, fl) \
	{ .key = (k), .kind = K_STRING, AT(m), .valid = (ok), .rule = (r), \
	  .flags = (fl) }
#define F_CUSTOM(k, p, e) \
	{ .key = (k), .kind = K_CUSTOM, .parse = (p), .emit = (e) }
#define F_END		{ .kind = K_END }

static const struct field history_config_fields[] = {
	F_UINT("max_primary_shards", node.max_primary_shards, 0, CFG_ANY),
	F_UINT("max_raw_shards", node.max_raw_shards, 0, CFG_ANY),
	F_END
};

static const struct field node_fields[] = {
	F_STR("public_key", node.public_key_hex, pubkey_ok, RULE_PK, FL_LOWER),
	F_STR("private_key", node.private_key_hex, seckey_ok, RULE_SK,
	    FL_LOWER | FL_SECRET),
	F_ENUM("role", node.role, role_names),
	F_ENUM("history", node.history, history_names),
	F_SECTION("history_config", history_config_fields),
	F_END
};

static const struct field contract_log_fields[] = {
	F_BOOL("enable", contract.log.enable),
	F_UINT("max_mbytes_per_file", contract.log.max_mbytes_per_file, 0,
	    CFG_ANY),
	F_UINT("max_file_count", contract.log.max_file_count, 0, CFG_ANY),
	F_END
};

static const struct field consensus_fields[] = {
	F_ENUM("mode", contract.consensus.mode, mode_names),
	F_UINT("roundtime", contract.consensus.roundtime, 1, 3600000),
	F_UINT("stage_slice", contract.consensus.stage_slice, 1, 33),
	F_UINT("threshold", contract.consensus.threshold, 1, 100),
	F_END
};

static const struct field npl_fields[] = {
	F_ENUM("mode", contract.npl.mode, mode_names),
	F_END
};

static const struct field round_limits_fields[] = {
	F_UINT("user_input_bytes", contract.round_limits.user_input_bytes, 0,
	    CFG_ANY),
	F_UINT("user_output_bytes", contract.round_limits.user_output_bytes, 0,
	    CFG_ANY),
	F_UINT("npl_output_bytes", contract.round_limits.npl_output_bytes, 0,
	    CFG_ANY),
	F_UINT("proc_cpu_seconds", contract.round_limits.proc_cpu_seconds, 0,
	    CFG_ANY),
	F_UINT("proc_mem_bytes", contract.round_limits.proc_mem_bytes, 0,
	    CFG_ANY),
	F_UINT("proc_ofd_count", contract.round_limits.proc_ofd_count, 0,
	    CFG_ANY),
	F_UINT("exec_timeout", contract.round_limits.exec_timeout, 0, CFG_ANY),
	F_END
};

static const struct field contract_fields[] = {
	F_STR("id", contract.id, uuid_ok, RULE_UUID, 0),
	F_BOOL("execute", contract.execute),
	F_STR("run_as", contract.run_as, run_as_ok, RULE_RUN_AS, 0),
	F_SECTION("log", contract_log_fields),
	F_STR("version", contract.version, nonempty_ok,
	    "must be a non-empty string", 0),
	F_CUSTOM("unl", parse_unl, emit_unl),
	F_STR("bin_path", contract.bin_path, NULL, "must be a string", 0),
	F_STR("bin_args", contract.bin_args, NULL, "must be a string", 0),
	F_CUSTOM("environment", parse_environment, emit_environment),
	F_UINT("max_input_ledger_offset", contract.max_input_ledger_offset, 0,
	    65535),
	F_SECTION("consensus", consensus_fields),
	F_SECTION("npl", npl_fields),
	F_SECTION("round_limits", round_limits_fields),
	F_END
};

static const struct field peer_discovery_fields[] = {
	F_BOOL("enabled", mesh.peer_discovery.enabled),
	F_UINT("interval", mesh.peer_discovery.interval, 0, 65535),
	F_END
};

static const struct field mesh_fields[] = {
	F_UINT("port", mesh.port, 1, 65535),
	F_BOOL("listen", mesh.listen),
	F_UINT("idle_timeout", mesh.idle_timeout, 0, CFG_ANY),
	F_CUSTOM("known_peers", parse_known_peers, emit_known_peers),
	F_BOOL("msg_forwarding", mesh.msg_forwarding),
	F_UINT("max_connections", mesh.max_connections, 0, CFG_ANY),
	F_UINT("max_known_connections", mesh.max_known_connections, 0,
	    CFG_ANY),
	F_UINT("max_in_connections_per_host", mesh.max_in_connections_per_host,
	    0, CFG_ANY),
	F_MSGSIZE("max_bytes_per_msg", mesh.max_bytes_per_msg),
	F_UINT("max_bytes_per_min", mesh.max_bytes_per_min, 0, CFG_ANY),
	F_UINT("max_bad_msgs_per_min", mesh.max_bad_msgs_per_min, 0, CFG_ANY),
	F_UINT("max_bad_msgsigs_per_min", mesh.max_bad_msgsigs_per_min, 0,
	    CFG_ANY),
	F_UINT("max_dup_msgs_per_min", mesh.max_dup_msgs_per_min, 0, CFG_ANY),
	F_SECTION("peer_discovery", peer_discovery_fields),
	F_END
};

static const struct field user_fields[] = {
	F_UINT("port", user.port, 1, 65535),
	F_BOOL("listen", user.listen),
	F_UINT("idle_timeout", user.idle_timeout, 0, CFG_ANY),
	F_MSGSIZE("max_bytes_per_msg", user.max_bytes_per_msg),
	F_UINT("max_bytes_per_min", user.max_bytes_per_min, 0, CFG_ANY),
	F_UINT("max_bad_msgs_per_min", user.max_bad_msgs_per_min, 0, CFG_ANY),
	F_UINT("max_connections", user.max_connections, 0, CFG_ANY),
	F_UINT("max_in_connections_per_host", user.max_in_connections_per_host,
	    0, CFG_ANY),
	F_UINT("concurrent_read_requests", user.concurrent_read_requests, 0,
	    32),
	F_END
};

static const struct field hpfs_log_fields[] = {
	F_ENUM("log_level", hpfs.log_level, level_names),
	F_END
};

static const struct field hpfs_fields[] = {
	F_BOOL("external", hpfs.external),
	F_SECTION("log", hpfs_log_fields),
	F_END
};

static const struct field log_fields[] = {
	F_ENUM("log_level", log.log_level, level_names),
	F_UINT("max_mbytes_per_file", log.max_mbytes_per_file, 0, CFG_ANY),
	F_UINT("max_file_count", log.max_file_count, 0, CFG_ANY),
	F_CUSTOM("loggers", parse_loggers, emit_loggers),
	F_END
};

static const struct field top_fields[] = {
	F_STR("hp_version", hp_version, version_ok, RULE_VERSION, 0),
	F_SECTION("node", node_fields),
	F_SECTION("contract", contract_fields),
	F_SECTION("mesh", mesh_fields),
	F_SECTION("user", user_fields),
	F_SECTION("hpfs", hpfs_fields),
	F_SECTION("log", log_fields),
	F_END
};

/*
 * Checks that need the whole file: required fields, the key pair, the
 * default UNL and the rules that tie two fields together.
 */
static int
finish(struct ctx *c, json_t *root)
{
	json_t *node = json_object_get(root, "node");
	json_t *contract = json_object_get(root, "contract");
	struct hp_config *cfg = c->cfg;
	int rc;

	/* A section of the wrong type has been reported already. */
	if (node == NULL || json_is_object(node)) {
		if (json_object_get(node, "public_key") == NULL)
			diag(c, HP_CONFIG_ERROR, "node.public_key: required "
			    "but missing; " FIX_KEYS);
		if (c->public_only &&
		    json_object_get(node, "private_key") != NULL)
			diag(c, HP_CONFIG_ERROR, "node.private_key: must not be"
			    " present in a worker's copy of the configuration");
		else if (!c->public_only &&
		    json_object_get(node, "private_key") == NULL)
			diag(c, HP_CONFIG_ERROR, "node.private_key: required "
			    "but missing; " FIX_KEYS);
	}
	if (c->public_only && cfg->node.public_key_hex != NULL &&
	    hp_pubkey_from_hex(cfg->node.public_key_hex, cfg->node.keys.pk) != 0)
		diag(c, HP_CONFIG_ERROR, "node.public_key: malformed");
	if (!c->public_only && cfg->node.public_key_hex != NULL &&
	    cfg->node.private_key_hex != NULL) {
		if (hp_crypto_init() != 0)
			return HP_ECRYPTO;
		rc = hp_keypair_from_hex(cfg->node.public_key_hex,
		    cfg->node.private_key_hex, &cfg->node.keys);
		if (rc != 0)
			diag(c, HP_CONFIG_ERROR, "node.private_key: must be "
			    "the private key of node.public_key (signing and "
			    "verifying \"hotpocket\" failed), got a different "
			    "key; " FIX_KEYS);
	}
	if (json_object_get(contract, "unl") == NULL &&
	    cfg->node.public_key_hex != NULL) {
		if ((cfg->contract.unl = calloc(1, sizeof(char *))) == NULL ||
		    (cfg->contract.unl[0] =
		    strdup(cfg->node.public_key_hex)) == NULL)
			return HP_ENOMEM;
		cfg->contract.unl_count = 1;
	}
	if ((contract == NULL || json_is_object(contract)) &&
	    json_object_get(contract, "id") == NULL)
		diag(c, HP_CONFIG_ERROR, "contract.id: required but missing; "
		    FIX_ID);
	if (cfg->node.history == HP_HISTORY_CUSTOM &&
	    cfg->node.max_primary_shards == 0)
		diag(c, HP_CONFIG_ERROR, "node.history_config."
		    "max_primary_shards: must be greater than 0 when "
		    "node.history is \"custom\", got 0");
	if (cfg->mesh.max_connections > 0 &&
	    (cfg->mesh.max_known_connections < 1 ||
	    cfg->mesh.max_known_connections > cfg->mesh.max_connections))
		diag(c, HP_CONFIG_ERROR, "mesh.max_known_connections: must be "
		    "an integer from 1 to %llu (mesh.max_connections) when "
		    "mesh.max_connections is not 0, got %llu",
		    (unsigned long long)cfg->mesh.max_connections,
		    (unsigned long long)cfg->mesh.max_known_connections);
	return 0;
}

/*
 * Strings that cannot be allocated are left NULL; hp_config_parse() checks
 * for that, other callers may too.
 */
void
hp_config_defaults(struct hp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->hp_version = strdup(HP_VERSION_STRING);

	cfg->node.role = HP_ROLE_VALIDATOR;
	cfg->node.history = HP_HISTORY_CUSTOM;
	cfg->node.max_primary_shards = 1;
	cfg->node.max_raw_shards = 0;

	cfg->contract.execute = true;
	cfg->contract.run_as = strdup("");
	cfg->contract.log.enable = false;
	cfg->contract.log.max_mbytes_per_file = 5;
	cfg->contract.log.max_file_count = 10;
	cfg->contract.version = strdup("1.0");
	cfg->contract.bin_path = strdup("<your contract binary here>");
	cfg->contract.bin_args = strdup("");
	cfg->contract.max_input_ledger_offset = 10;
	cfg->contract.consensus.mode = HP_MODE_PRIVATE;
	cfg->contract.consensus.roundtime = 1000;
	cfg->contract.consensus.stage_slice = 25;
	cfg->contract.consensus.threshold = 80;
	cfg->contract.npl.mode = HP_MODE_PRIVATE;
	cfg->contract.round_limits.exec_timeout = 300000;

	cfg->mesh.port = 22860;
	cfg->mesh.listen = true;
	cfg->mesh.idle_timeout = 120000;
	cfg->mesh.msg_forwarding = true;
	cfg->mesh.max_bytes_per_msg = CFG_DEFAULT_MSG;
	cfg->mesh.peer_discovery.enabled = true;
	cfg->mesh.peer_discovery.interval = 30000;

	cfg->user.port = 8080;
	cfg->user.listen = true;
	cfg->user.max_bytes_per_msg = CFG_DEFAULT_MSG;
	cfg->user.concurrent_read_requests = 4;

	cfg->hpfs.external = false;
	cfg->hpfs.log_level = HP_LOG_WRN;

	cfg->log.log_level = HP_LOG_INF;
	cfg->log.max_mbytes_per_file = 5;
	cfg->log.max_file_count = 10;
	cfg->log.log_console = true;
	cfg->log.log_file = true;
}

static int parse(struct ctx *cp, const char *json, size_t len);

int
hp_config_parse(const char *name, const char *json, size_t len,
    struct hp_config *cfg, hp_config_report_fn report, void *arg)
{
	struct ctx c = { .name = name, .report = report, .arg = arg,
	    .cfg = cfg };

	return parse(&c, json, len);
}

int
hp_config_parse_public(const char *name, const char *json, size_t len,
    struct hp_config *cfg, hp_config_report_fn report, void *arg)
{
	struct ctx c = { .name = name, .report = report, .arg = arg,
	    .cfg = cfg, .public_only = 1 };

	return parse(&c, json, len);
}

static int
parse(struct ctx *cp, const char *json, size_t len)
{
	struct ctx c = *cp;
	struct hp_config *cfg = c.cfg;
	char buf[CFG_SHOW_SIZE], text[4 * JSON_ERROR_TEXT_LENGTH + 4];
	json_error_t jerr;
	json_t *root;
	int rc;

	hp_config_defaults(cfg);
	if (cfg->hp_version == NULL || cfg->contract.run_as == NULL ||
	    cfg->contract.version == NULL || cfg->contract.bin_path == NULL ||
	    cfg->contract.bin_args == NULL) {
		hp_config_free(cfg);
		return HP_ENOMEM;
	}
	if (len > CFG_MAX_FILE) {
		diag(&c, HP_CONFIG_ERROR, "file is %zu bytes, larger than the "
		    "%d-byte (1 MiB) limit for hp.cfg", len, CFG_MAX_FILE);
		hp_config_free(cfg);
		return HP_EINVAL;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		/* jansson quotes the token it choked on, raw. */
		escape(jerr.text, strnlen(jerr.text, sizeof(jerr.text)),
		    sizeof(jerr.text), text, sizeof(text));
		diag(&c, HP_CONFIG_ERROR, "invalid JSON at line %d, column %d: "
		    "%s", jerr.line, jerr.column, text);
		hp_config_free(cfg);
		return HP_EINVAL;
	}
	if (!json_is_object(root)) {
		diag(&c, HP_CONFIG_ERROR, "the top level must be an object, "
		    "got %s", show(root, true, buf));
		rc = 0;
	} else if ((rc = walk(&c, top_fields, "", root)) == 0)
		rc = finish(&c, root);
	wipe_json_secret(root);
	json_decref(root);
	if (rc == 0 && c.errors > 0)
		rc = HP_EINVAL;
	if (rc != 0)
		hp_config_free(cfg);
	return rc;
}

int
hp_config_load(const char *path, struct hp_config *cfg,
    hp_config_report_fn report, void *arg)
{
	struct ctx c = { .name = path, .report = report, .arg = arg };
	size_t len = 0;
	struct stat st;
	ssize_t n;
	char *buf;
	int fd, rc;

	memset(cfg, 0, sizeof(*cfg));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		rc = errno == ENOENT ? HP_ENOENT : HP_EIO;
		diag(&c, HP_CONFIG_ERROR, "cannot open: %s", strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) == -1) {
		diag(&c, HP_CONFIG_ERROR, "cannot read: %s", strerror(errno));
		close(fd);
		return HP_EIO;
	}
	if (!S_ISREG(st.st_mode)) {
		diag(&c, HP_CONFIG_ERROR, "cannot read: not a regular file");
		close(fd);
		return HP_EIO;
	}
	if (st.st_size > CFG_MAX_FILE) {
		diag(&c, HP_CONFIG_ERROR, "file is %lld bytes, larger than the "
		    "%d-byte (1 MiB) limit for hp.cfg", (long long)st.st_size,
		    CFG_MAX_FILE);
		close(fd);
		return HP_EINVAL;
	}
	/* One byte more than the limit, to notice a file that grew. */
	if ((buf = malloc(CFG_MAX_FILE + 1)) == NULL) {
		close(fd);
		return HP_ENOMEM;
	}
	while (len < CFG_MAX_FILE + 1) {
		n = read(fd, buf + len, CFG_MAX_FILE + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			diag(&c, HP_CONFIG_ERROR, "cannot read: %s",
			    strerror(errno));
			sodium_memzero(buf, len);
			free(buf);
			close(fd);
			return HP_EIO;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	rc = hp_config_parse(path, buf, len, cfg, report, arg);
	sodium_memzero(buf, len);
	free(buf);
	return rc;
}

static int emit(const struct field *, const struct hp_config *, json_t *);

static int
emit_field(const struct field *f, const struct hp_config *cfg, json_t **out)
{
	const char *p = (const char *)cfg + f->off;
	uint64_t u;
	size_t i;
	int rc, e;

	*out = NULL;
	switch (f->kind) {
	case K_SECTION:
		if ((*out = json_object()) == NULL)
			return HP_ENOMEM;
		return emit(f->sub, cfg, *out);
	case K_BOOL:
		*out = json_boolean(*(const bool *)p);
		break;
	case K_UINT:
		if (f->size == sizeof(uint16_t))
			u = *(const uint16_t *)p;
		else
			u = *(const uint64_t *)p;
		if (u > CFG_ANY)
			return HP_EINVAL;
		*out = json_integer((json_int_t)u);
		break;
	case K_ENUM:
		e = *(const int *)p;
		for (i = 0; f->names[i] != NULL; i++)
			;
		if (e < 0 || (size_t)e >= i)
			return HP_EINVAL;
		*out = json_string(f->names[e]);
		break;
	case K_STRING:
		if (*(char *const *)p == NULL)
			return 0;	/* not set: leave the field out */
		if ((*out = json_string(*(char *const *)p)) == NULL)
			return HP_EINVAL;	/* not UTF-8 */
		break;
	case K_CUSTOM:
		if ((rc = f->emit(cfg, out)) != 0)
			return rc;
		break;
	case K_END:
		break;
	}
	return *out == NULL ? HP_ENOMEM : 0;
}

static int
emit(const struct field *tab, const struct hp_config *cfg, json_t *obj)
{
	json_t *v;
	int rc;

	for (; tab->kind != K_END; tab++) {
		rc = emit_field(tab, cfg, &v);
		if (v != NULL && json_object_set_new(obj, tab->key, v) != 0)
			return HP_ENOMEM;
		if (rc != 0)
			return rc;
	}
	return 0;
}

void
hp_json_merge(json_t *dst, json_t *src)
{
	const char *k;
	json_t *v;

	json_object_foreach(src, k, v) {
		json_t *d = json_object_get(dst, k);
		if (json_is_object(d) && json_is_object(v))
			hp_json_merge(d, v);
		else
			json_object_set(dst, k, v);
	}
}

/* The contract fields HotPocket keeps in patch.cfg, in its order. */
static const char *const patch_keys[] = { "version", "unl", "bin_path",
	"bin_args", "environment", "max_input_ledger_offset", "consensus",
	"npl", "round_limits", NULL };

int
hp_config_is_patch_key(const char *key)
{
	for (size_t i = 0; patch_keys[i] != NULL; i++)
		if (strcmp(patch_keys[i], key) == 0)
			return 1;
	return 0;
}

json_t *
hp_config_patch_json(const struct hp_config *cfg)
{
	json_t *obj = json_object(), *v;

	if (obj == NULL)
		return NULL;
	for (size_t i = 0; patch_keys[i] != NULL; i++) {
		const struct field *f;
		for (f = contract_fields; f->kind != K_END; f++)
			if (strcmp(f->key, patch_keys[i]) == 0)
				break;
		if (f->kind == K_END || emit_field(f, cfg, &v) != 0) {
			json_decref(v);
			json_decref(obj);
			return NULL;
		}
		if (v != NULL)
			json_object_set_new(obj, f->key, v);
	}
	return obj;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, buf, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return HP_EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* fsync the directory holding path so that a rename in it is durable. */
static int
sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, rc = 0;

	if (slash == NULL)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return HP_ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd == -1)
		return HP_EIO;
	if (fsync(fd) == -1)
		rc = HP_EIO;
	close(fd);
	return rc;
}

int
hp_config_write(const char *path, const struct hp_config *cfg)
{
	char *tmp = NULL, *text = NULL;
	json_t *root;
	size_t len = 0;
	int fd, rc;

	if ((root = json_object()) == NULL)
		return HP_ENOMEM;
	rc = emit(top_fields, cfg, root);
	if (rc == 0 && (text = json_dumps(root,
	    JSON_INDENT(4) | JSON_PRESERVE_ORDER)) == NULL)
		rc = HP_ENOMEM;
	wipe_json_secret(root);
	json_decref(root);
	if (rc != 0)
		return rc;
	len = strlen(text);
	if (asprintf(&tmp, "%s.tmp", path) == -1) {
		rc = HP_ENOMEM;
		tmp = NULL;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1) {
		rc = HP_EIO;
		goto out;
	}
	if (fchmod(fd, 0600) == -1 || write_all(fd, text, len) != 0 ||
	    write_all(fd, "\n", 1) != 0 || fsync(fd) == -1)
		rc = HP_EIO;
	if (close(fd) == -1 && rc == 0)
		rc = HP_EIO;
	if (rc == 0 && rename(tmp, path) == -1)
		rc = HP_EIO;
	if (rc != 0)
		unlink(tmp);
	else
		rc = sync_dir(path);
out:
	free(tmp);
	sodium_memzero(text, len);
	free(text);
	return rc;
}

void
hp_config_free(struct hp_config *cfg)
{
	free(cfg->hp_version);
	free(cfg->node.public_key_hex);
	wipe_str(cfg->node.private_key_hex);
	free(cfg->node.private_key_hex);
	hp_keypair_wipe(&cfg->node.keys);
	free(cfg->contract.id);
	free(cfg->contract.run_as);
	free(cfg->contract.version);
	free_strv(cfg->contract.unl, cfg->contract.unl_count);
	free(cfg->contract.bin_path);
	free(cfg->contract.bin_args);
	free_env(cfg->contract.environment, cfg->contract.environment_count);
	free_peers(cfg->mesh.known_peers, cfg->mesh.known_peers_count);
	memset(cfg, 0, sizeof(*cfg));
}
