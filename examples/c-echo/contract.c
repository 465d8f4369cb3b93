/*
 * c-echo — a HotPocket contract in C with no contract library: it speaks
 * the node ⇄ contract protocol itself, as hotpocket-nodejs-contract does,
 * and runs on hpd as on any HotPocket node.
 *
 * - The args JSON arrives on stdin; it is read to EOF.
 * - user_in_fd holds every input; it is mapped and each input is read at
 *   its [offset, length].
 * - For each user and each of its inputs, "Echo: <input>" goes to the
 *   user's output socket as one message: a 4-byte big-endian length, then
 *   the bytes.
 * - In a consensus run it appends one line to echo-runs.txt in its working
 *   directory (the state): "<lcl_seq_no> <lcl_hash> users=N inputs=N
 *   patch_version=V", V being the "version" of ../patch.cfg ("-" when that
 *   cannot be read). A read-only run writes nothing to the state.
 *
 * The control and NPL channels are left alone. It exits 0, or 1 when the
 * args cannot be read.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define RUNS_FILE "echo-runs.txt"
#define PATCH_FILE "../patch.cfg"
#define ECHO_PREFIX "Echo: "

/* The whole of stdin, NUL-terminated; caller frees. */
static char *
read_stdin(void)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap), *nb;
	ssize_t n;

	if (buf == NULL)
		return NULL;
	for (;;) {
		if (len + 1 == cap) {
			if ((nb = realloc(buf, cap * 2)) == NULL) {
				free(buf);
				return NULL;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(0, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	return buf;
}

/* One framed message: 4-byte big-endian length, then the payload. */
static int
send_msg(int fd, const void *prefix, size_t plen, const void *data,
    size_t dlen)
{
	uint32_t total = (uint32_t)(plen + dlen);
	uint8_t hdr[4] = { total >> 24, total >> 16, total >> 8, total };
	struct iovec iov[3] = {
		{ hdr, sizeof(hdr) },
		{ (void *)prefix, plen },
		{ (void *)data, dlen },
	};
	struct iovec *v = iov;
	int cnt = 3;

	while (cnt > 0) {
		ssize_t n = writev(fd, v, cnt);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		while (cnt > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			cnt--;
		}
		if (cnt > 0) {
			v->iov_base = (uint8_t *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Echo every input of one user; returns how many were echoed. */
static size_t
echo_user(const char *key, json_t *entry, const uint8_t *in, size_t in_size)
{
	json_t *fdj = json_array_get(entry, 0);
	size_t count = 0;
	int fd;

	if (!json_is_integer(fdj)) {
		fprintf(stderr, "c-echo: user %s: no output fd\n", key);
		return 0;
	}
	fd = (int)json_integer_value(fdj);
	for (size_t i = 1; i < json_array_size(entry); i++) {
		json_t *in_ref = json_array_get(entry, i);
		json_int_t off = json_integer_value(json_array_get(in_ref, 0));
		json_int_t len = json_integer_value(json_array_get(in_ref, 1));

		if (off < 0 || len < 0 || (uint64_t)off > in_size ||
		    (uint64_t)len > in_size - (uint64_t)off) {
			fprintf(stderr, "c-echo: user %s: input %zu is outside"
			    " the input fd\n", key, i);
			continue;
		}
		if (send_msg(fd, ECHO_PREFIX, strlen(ECHO_PREFIX),
		    in + off, (size_t)len) != 0) {
			fprintf(stderr, "c-echo: user %s: write: %s\n", key,
			    strerror(errno));
			break;
		}
		count++;
	}
	close(fd);
	return count;
}

/* The "version" of ../patch.cfg, or "-"; caller frees. */
static char *
patch_version(void)
{
	json_t *p = json_load_file(PATCH_FILE, 0, NULL);
	const char *v = json_string_value(json_object_get(p, "version"));
	char *r = strdup(v != NULL && v[0] != '\0' ? v : "-");

	json_decref(p);
	return r;
}

int
main(void)
{
	char *text = read_stdin(), *ver;
	json_t *args, *users, *entry;
	const char *key;
	struct stat st;
	uint8_t *in = NULL;
	size_t in_size = 0, nusers = 0, ninputs = 0;
	int in_fd, readonly;
	FILE *f;

	if (text == NULL || (args = json_loads(text, 0, NULL)) == NULL) {
		fprintf(stderr, "c-echo: cannot read the args JSON on stdin\n");
		return 1;
	}
	free(text);
	readonly = json_is_true(json_object_get(args, "readonly"));
	in_fd = (int)json_integer_value(json_object_get(args, "user_in_fd"));
	if (in_fd > 0 && fstat(in_fd, &st) == 0 && st.st_size > 0) {
		in_size = (size_t)st.st_size;
		in = mmap(NULL, (in_size + 4095) & ~(size_t)4095, PROT_READ,
		    MAP_SHARED, in_fd, 0);
		if (in == MAP_FAILED) {
			fprintf(stderr, "c-echo: mmap user_in_fd: %s\n",
			    strerror(errno));
			in = NULL;
			in_size = 0;
		}
	}
	users = json_object_get(args, "users");
	json_object_foreach(users, key, entry) {
		nusers++;
		ninputs += echo_user(key, entry, in, in_size);
	}
	if (!readonly) {
		ver = patch_version();
		if ((f = fopen(RUNS_FILE, "a")) == NULL) {
			fprintf(stderr, "c-echo: %s: %s\n", RUNS_FILE,
			    strerror(errno));
		} else {
			fprintf(f, "%lld %s users=%zu inputs=%zu"
			    " patch_version=%s\n", (long long)json_integer_value(
			    json_object_get(args, "lcl_seq_no")),
			    json_string_value(json_object_get(args,
			    "lcl_hash")) ?: "-", nusers, ninputs, ver);
			if (fclose(f) != 0)
				fprintf(stderr, "c-echo: %s: %s\n", RUNS_FILE,
				    strerror(errno));
		}
		free(ver);
	}
	printf("c-echo: %s run, %zu users, %zu inputs echoed\n",
	    readonly ? "read-only" : "consensus", nusers, ninputs);
	json_decref(args);
	return 0;
}
