/*
 * log.c — formatting and emitting hpd log records (see log.h).
 */
#include "log.h"
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char log_name[32] = "hpd";
static enum hp_log_level log_level = HP_LOG_INF;

static log_sink_fn log_sink;

static const char *const level_names[] = { "dbg", "inf", "wrn", "err" };

void
log_init(const char *name, enum hp_log_level level)
{
	snprintf(log_name, sizeof(log_name), "%s", name);
	log_level = level;
}

void
log_set_sink(log_sink_fn fn)
{
	log_sink = fn;
}

void
log_set_level(enum hp_log_level level)
{
	log_level = level;
}

enum hp_log_level
log_get_level(void)
{
	return log_level;
}

int
log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

const char *
log_level_name(enum hp_log_level level)
{
	return (unsigned)level < 4 ? level_names[level] : "???";
}

void
log_timestamp(char *buf, unsigned long size)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(buf, size, "%04d%02d%02d %02d:%02d:%02d.%03ld",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
}

static void
log_emit(enum hp_log_level level, int with_errno, const char *fmt, va_list ap)
{
	char ts[32], msg[1024], line[1200];
	int saved = errno;
	int n;

	if (level < log_level)
		return;
	log_timestamp(ts, sizeof(ts));
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno)
		n = snprintf(line, sizeof(line), "%s [%s][%s] %s: %s\n", ts,
		    level_names[level], log_name, msg, strerror(saved));
	else
		n = snprintf(line, sizeof(line), "%s [%s][%s] %s\n", ts,
		    level_names[level], log_name, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (log_sink != NULL)
		log_sink(line, (unsigned long)n);
	else	/* one write per record: concurrent writers never interleave */
		(void)!write(STDERR_FILENO, line, (size_t)n);
	errno = saved;
}

#define LOG_FN(fn, lvl, err)				\
	void fn(const char *fmt, ...)			\
	{						\
		va_list ap;				\
		va_start(ap, fmt);			\
		log_emit(lvl, err, fmt, ap);		\
		va_end(ap);				\
	}

LOG_FN(log_debug, HP_LOG_DBG, 0)
LOG_FN(log_info, HP_LOG_INF, 0)
LOG_FN(log_warn, HP_LOG_WRN, 1)
LOG_FN(log_warnx, HP_LOG_WRN, 0)
LOG_FN(log_err, HP_LOG_ERR, 1)
LOG_FN(log_errx, HP_LOG_ERR, 0)

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(HP_LOG_ERR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(HP_LOG_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

const char *
hp_strerror(int err)
{
	switch (err) {
	case HP_OK: return "success";
	case HP_ENOMEM: return "out of memory";
	case HP_ETRUNC: return "truncated input";
	case HP_ETOOBIG: return "exceeds limit";
	case HP_EFORMAT: return "malformed encoding";
	case HP_ETYPE: return "message type not allowed";
	case HP_EIO: return "I/O error";
	case HP_EEOF: return "connection closed";
	case HP_EAGAIN: return "try again";
	case HP_EINVAL: return "invalid value";
	case HP_ECRYPTO: return "key or signature check failed";
	case HP_EEXIST: return "already exists";
	case HP_ENOENT: return "not found";
	case HP_EPROTO: return "protocol violation";
	case HP_EBUSY: return "busy";
	default: return "unknown error";
	}
}
