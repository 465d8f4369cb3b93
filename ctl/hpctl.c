/*
 * hpctl — talk to a running hpd over its control socket.
 *
 * Exit codes: 0 ok, 1 the command failed, 100 usage error, 111 the node is
 * unreachable (no socket, refused, or no answer within the timeout).
 */
#include "channel.h"
#include "err.h"
#include "mpack.h"
#include "proto.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EX_OK 0
#define EX_FAILED 1
#define EX_USAGE 100
#define EX_UNREACHABLE 111
#define TIMEOUT_MS 5000

static const char usage_text[] =
    "usage: hpctl [-d DIR | -s SOCKET] [--json] COMMAND\n"
    "\n"
    "commands:\n"
    "  status                      the node and each worker: state, pid,\n"
    "                              uid, uptime, restarts, last exit\n"
    "  restart WORKER              restart a worker (clears a failed state)\n"
    "  stop WORKER                 stop a worker; it stays stopped\n"
    "  start WORKER                start a stopped or failed worker\n"
    "  log level WORKER|hpd LEVEL  set a log level: dbg, inf, wrn, err\n"
    "  show consensus              round, stage, vote status, UNL liveness\n"
    "  show ledger [SEQ]           the last closed ledger, or ledger SEQ\n"
    "  show peers                  peer connections and counters\n"
    "  show state                  state hashes and store\n"
    "  show sync                   config, state and ledger sync progress\n"
    "  show runner                 contract runs: last run, timeouts, skips\n"
    "  show gateway                user connections, inputs, read requests\n"
    "  state begin|commit|abort    a state session by hand (test hooks only)\n"
    "\n"
    "WORKER is one of consensus, peer, state, gateway, runner.\n"
    "The node directory is DIR (default: $HPD_DIR, else the current\n"
    "directory if it holds ctl.sock, else /var/lib/hpd).\n"
    "--json prints the node's reply as JSON.\n"
    "Exit codes: 0 ok, 1 failed, 100 usage, 111 node unreachable.\n";

static json_t *
to_json(const msgpack_object *o)
{
	json_t *j;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return json_stringn(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_ARRAY:
		j = json_array();
		for (uint32_t i = 0; i < o->via.array.size; i++)
			json_array_append_new(j, to_json(&o->via.array.ptr[i]));
		return j;
	case MSGPACK_OBJECT_MAP:
		j = json_object();
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			char key[128];
			if (kv->key.type != MSGPACK_OBJECT_STR ||
			    kv->key.via.str.size >= sizeof(key))
				continue;
			memcpy(key, kv->key.via.str.ptr, kv->key.via.str.size);
			key[kv->key.via.str.size] = '\0';
			json_object_set_new(j, key, to_json(&kv->val));
		}
		return j;
	default:
		return json_null();
	}
}

static void
fmt_duration(uint64_t ms, char *buf, size_t size)
{
	uint64_t s = ms / 1000;

	if (s < 120)
		snprintf(buf, size, "%llus", (unsigned long long)s);
	else if (s < 7200)
		snprintf(buf, size, "%llum", (unsigned long long)(s / 60));
	else if (s < 172800)
		snprintf(buf, size, "%lluh", (unsigned long long)(s / 3600));
	else
		snprintf(buf, size, "%llud", (unsigned long long)(s / 86400));
}

static void
print_status(json_t *d)
{
	char up[16];
	json_t *ws = json_object_get(d, "workers");
	size_t i;
	json_t *w;

	fmt_duration((uint64_t)json_integer_value(json_object_get(d,
	    "uptime_ms")), up, sizeof(up));
	printf("hpd %s on %s: pid %lld, up %s, privilege separation %s\n",
	    json_string_value(json_object_get(d, "version")),
	    json_string_value(json_object_get(d, "dir")),
	    json_integer_value(json_object_get(d, "pid")), up,
	    json_string_value(json_object_get(d, "privsep")));
	printf("public key %s\ncontract   %s\n%lld of 5 workers ready\n\n",
	    json_string_value(json_object_get(d, "public_key")),
	    json_string_value(json_object_get(d, "contract_id")),
	    json_integer_value(json_object_get(d, "workers_ready")));
	printf("%-10s %-9s %7s %6s %7s %8s  %s\n", "WORKER", "STATE", "PID",
	    "UID", "UPTIME", "RESTARTS", "LAST EXIT");
	json_array_foreach(ws, i, w) {
		json_int_t pid = json_integer_value(json_object_get(w, "pid"));
		char pidbuf[16];
		if (pid > 0)
			snprintf(pidbuf, sizeof(pidbuf), "%lld", pid);
		else
			strcpy(pidbuf, "-");
		fmt_duration((uint64_t)json_integer_value(json_object_get(w,
		    "uptime_ms")), up, sizeof(up));
		printf("%-10s %-9s %7s %6lld %7s %8lld  %s\n",
		    json_string_value(json_object_get(w, "name")),
		    json_string_value(json_object_get(w, "state")), pidbuf,
		    json_integer_value(json_object_get(w, "uid")),
		    pid > 0 ? up : "-",
		    json_integer_value(json_object_get(w, "restarts")),
		    json_string_value(json_object_get(w, "last_exit")));
	}
	json_array_foreach(json_object_get(d, "warnings"), i, w)
		printf("\nwarning: %s\n", json_string_value(w));
}

/* A readable, YAML-like rendering for `show` replies. */
static void
print_value(json_t *v, int indent, int in_list)
{
	const char *k;
	json_t *e;
	size_t i;
	int first = 1;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		json_object_foreach(v, k, e) {
			int pad = in_list && first ? 0 : indent;
			first = 0;
			if (json_is_object(e) || (json_is_array(e) &&
			    json_array_size(e) > 0)) {
				printf("%*s%s:\n", pad, "", k);
				print_value(e, indent + 2, 0);
			} else {
				printf("%*s%s: ", pad, "", k);
				print_value(e, 0, 0);
			}
		}
		break;
	case JSON_ARRAY:
		if (json_array_size(v) == 0) {
			printf("[]\n");
			break;
		}
		json_array_foreach(v, i, e) {
			printf("%*s- ", indent, "");
			if (json_is_object(e))
				print_value(e, indent + 2, 1);
			else
				print_value(e, 0, 0);
		}
		break;
	case JSON_STRING:
		printf("%s\n", json_string_value(v));
		break;
	case JSON_INTEGER:
		printf("%lld\n", (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		printf("%g\n", json_real_value(v));
		break;
	case JSON_TRUE:
		printf("yes\n");
		break;
	case JSON_FALSE:
		printf("no\n");
		break;
	default:
		printf("-\n");
	}
}

static int
connect_node(const char *sock)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(sock) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "hpctl: socket path too long: %s\n", sock);
		return -1;
	}
	strcpy(sa.sun_path, sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "hpctl: cannot reach hpd at %s: %s%s\n", sock,
		    strerror(errno), errno == ENOENT || errno == ECONNREFUSED ?
		    " (is the node running? start it with `hpd run DIR`)" :
		    errno == EACCES ? " (run as root or as a member of the"
		    " hpd group)" : "");
		close(fd);
		return -1;
	}
	return fd;
}

int
main(int argc, char **argv)
{
	const char *dir = NULL, *sock = NULL;
	char path[PATH_MAX];
	int json = 0, i, fd, r;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return EX_OK;
		} else if (strcmp(argv[i], "--json") == 0 ||
		    strcmp(argv[i], "-j") == 0)
			json = 1;
		else if (strcmp(argv[i], "-d") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			sock = argv[++i];
		else {
			fprintf(stderr, "hpctl: unknown option %s\n\n%s",
			    argv[i], usage_text);
			return EX_USAGE;
		}
	}
	if (i >= argc) {
		fputs(usage_text, stderr);
		return EX_USAGE;
	}
	if (argc - i > 8) {
		fprintf(stderr, "hpctl: too many arguments\n");
		return EX_USAGE;
	}
	if (sock == NULL) {
		if (dir == NULL)
			dir = getenv("HPD_DIR");
		if (dir == NULL)
			dir = access("ctl.sock", F_OK) == 0 ? "." : "/var/lib/hpd";
		snprintf(path, sizeof(path), "%s/ctl.sock", dir);
		sock = path;
	}
	if ((fd = connect_node(sock)) < 0)
		return EX_UNREACHABLE;

	struct hp_frame f;
	hp_frame_begin(&f, HP_CTL_REQUEST, 1, 0);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_uint32(&f.pk, 1);
	msgpack_pack_array(&f.pk, (size_t)(argc - i));
	for (int a = i; a < argc; a++)
		hp_mpack_pack_cstr(&f.pk, argv[a]);
	hp_frame_end(&f, 0);
	r = hp_fd_write_all(fd, f.sb.data, f.sb.size);
	hp_frame_free(&f);
	if (r != 0) {
		fprintf(stderr, "hpctl: cannot send to hpd at %s\n", sock);
		return EX_UNREACHABLE;
	}

	struct hp_msg m;
	uint8_t *buf;
	if ((r = hp_fd_read_frame(fd, hp_chan_policy(HP_CHAN_CTL_CLIENT),
	    TIMEOUT_MS, &buf, &m)) != 0) {
		fprintf(stderr, "hpctl: no answer from hpd at %s: %s\n", sock,
		    r == HP_EAGAIN ? "timed out" : hp_strerror(r));
		return EX_UNREACHABLE;
	}
	close(fd);

	uint64_t code = 1;
	char msg[512] = "";
	hp_mpack_u64(m.body, 1, &code);
	hp_mpack_str(m.body, 2, msg, sizeof(msg));
	const msgpack_object *data = hp_mpack_get(m.body, 3);
	json_t *jd = data != NULL ? to_json(data) : NULL;

	if (json) {
		json_t *out = json_object();
		json_object_set_new(out, "code", json_integer((json_int_t)code));
		json_object_set_new(out, "message", json_string(msg));
		if (jd != NULL)
			json_object_set(out, "data", jd);
		char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s);
		free(s);
		json_decref(out);
	} else if (code == 0 && jd != NULL && strcmp(argv[i], "status") == 0)
		print_status(jd);
	else if (code == 0 && jd != NULL)
		print_value(jd, 0, 0);
	else
		fprintf(code == 0 ? stdout : stderr, "%s%s\n",
		    code == 0 ? "" : "hpctl: ", msg);
	json_decref(jd);
	msgpack_unpacked_destroy(&m.res);
	free(buf);
	return code == 0 ? EX_OK : code == 100 ? EX_USAGE : EX_FAILED;
}
