/*
 * logsink.c — where log records end up.
 *
 * Each worker's stderr is a pipe whose read end the supervisor holds; every
 * complete line from it, and every record of the supervisor itself, goes to
 * the supervisor's stderr (the console, or the journal under systemd) and
 * to DIR/log/hp.log, as log.loggers says. The file rotates at
 * log.max_mbytes_per_file, keeping log.max_file_count files
 * (hp.log.1 is the newest old one).
 */
#include "hpd.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096

static struct {
	int console;
	int fd;
	char path[PATH_MAX];
	uint64_t size, max_size;
	unsigned max_files;
} ls = { 1, -1, "", 0, 0, 0 };

struct linebuf {
	uv_pipe_t pipe;		/* first: the handle's address is ours */
	struct worker *w;
	char buf[LINE_MAX_LEN];
	size_t len;
};

static void
rotate(void)
{
	char from[PATH_MAX + 16], to[PATH_MAX + 16];

	close(ls.fd);
	ls.fd = -1;
	for (unsigned i = ls.max_files > 1 ? ls.max_files - 1 : 1; i > 1; i--) {
		snprintf(from, sizeof(from), "%s.%u", ls.path, i - 1);
		snprintf(to, sizeof(to), "%s.%u", ls.path, i);
		rename(from, to);
	}
	snprintf(to, sizeof(to), "%s.1", ls.path);
	if (ls.max_files > 1)
		rename(ls.path, to);
	else
		unlink(ls.path);
	ls.fd = open(ls.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	ls.size = 0;
}

void
logsink_line(const char *line, size_t len)
{
	if (ls.console)
		(void)!write(STDERR_FILENO, line, len);
	if (ls.fd >= 0) {
		if (ls.max_size > 0 && ls.size + len > ls.max_size)
			rotate();
		if (ls.fd >= 0 && write(ls.fd, line, len) > 0)
			ls.size += len;
	}
}

static void
sink(const char *line, unsigned long len)
{
	logsink_line(line, len);
}

int
logsink_open(const char *dir, const struct hp_config *cfg)
{
	struct stat st;

	ls.console = cfg->log.log_console;
	ls.max_size = cfg->log.max_mbytes_per_file * 1024 * 1024;
	ls.max_files = (unsigned)cfg->log.max_file_count;
	if (cfg->log.log_file) {
		snprintf(ls.path, sizeof(ls.path), "%s/log/hp.log", dir);
		ls.fd = open(ls.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		    0640);
		if (ls.fd < 0) {
			log_warn("cannot open the log file %s; logging to"
			    " stderr only", ls.path);
			ls.console = 1;
		} else if (fstat(ls.fd, &st) == 0)
			ls.size = (uint64_t)st.st_size;
	}
	log_set_sink(sink);
	return 0;
}

void
logsink_close(void)
{
	log_set_sink(NULL);
	if (ls.fd >= 0)
		close(ls.fd);
	ls.fd = -1;
}

static void
alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct linebuf *lb = (struct linebuf *)h;

	buf->base = lb->buf + lb->len;
	buf->len = sizeof(lb->buf) - lb->len;
}

static void
closed_cb(uv_handle_t *h)
{
	free(h);
}

static void
read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct linebuf *lb = (struct linebuf *)s;
	char *nl;

	if (n < 0) {
		/* The worker is gone; flush a partial last line. */
		if (lb->len > 0) {
			lb->buf[lb->len < LINE_MAX_LEN ? lb->len : LINE_MAX_LEN - 1]
			    = '\n';
			logsink_line(lb->buf, lb->len + 1 <= LINE_MAX_LEN ?
			    lb->len + 1 : LINE_MAX_LEN);
		}
		if (lb->w != NULL && lb->w->logpipe == &lb->pipe)
			lb->w->logpipe = NULL;
		uv_close((uv_handle_t *)s, closed_cb);
		return;
	}
	lb->len += (size_t)n;
	size_t start = 0;
	while ((nl = memchr(lb->buf + start, '\n', lb->len - start)) != NULL) {
		size_t linelen = (size_t)(nl - (lb->buf + start)) + 1;
		logsink_line(lb->buf + start, linelen);
		start += linelen;
	}
	memmove(lb->buf, lb->buf + start, lb->len - start);
	lb->len -= start;
	if (lb->len == sizeof(lb->buf)) {
		/* An over-long line: emit it in pieces. */
		lb->buf[sizeof(lb->buf) - 1] = '\n';
		logsink_line(lb->buf, sizeof(lb->buf));
		lb->len = 0;
	}
}

int
logsink_attach(struct worker *w, int read_fd)
{
	struct linebuf *lb = calloc(1, sizeof(*lb));

	if (lb == NULL) {
		close(read_fd);
		return -1;
	}
	lb->w = w;
	if (uv_pipe_init(sv.loop, &lb->pipe, 0) != 0 ||
	    uv_pipe_open(&lb->pipe, read_fd) != 0) {
		close(read_fd);
		free(lb);
		return -1;
	}
	w->logpipe = &lb->pipe;
	uv_read_start((uv_stream_t *)&lb->pipe, alloc_cb, read_cb);
	return 0;
}
