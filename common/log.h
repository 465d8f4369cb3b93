/*
 * log.h — one-line log records for hpd and its workers.
 *
 * Format (as HotPocket's, so existing greps keep working):
 *   YYYYMMDD HH:MM:SS.mmm [inf][consensus] message
 * Records go to stderr. Workers' stderr is a pipe read by the supervisor,
 * which forwards each line to its own stderr (journal) and to the log file.
 * log_warn/log_err append strerror(errno); the *x variants do not.
 * fatal/fatalx log at error level and exit(1).
 */
#ifndef HP_LOG_H
#define HP_LOG_H

#include <stdarg.h>
#include <stdnoreturn.h>

enum hp_log_level {
	HP_LOG_DBG = 0,
	HP_LOG_INF = 1,
	HP_LOG_WRN = 2,
	HP_LOG_ERR = 3,
};

/* name: worker or program name shown in every record (copied). */
void log_init(const char *name, enum hp_log_level level);
void log_set_level(enum hp_log_level level);
enum hp_log_level log_get_level(void);

/* "dbg" | "inf" | "wrn" | "err" → level; -1 when unknown. */
int log_level_parse(const char *s);
const char *log_level_name(enum hp_log_level level);

/*
 * Route finished records (one line, newline included) to fn instead of
 * stderr; NULL restores stderr. The supervisor uses it to also write its
 * log file.
 */
typedef void (*log_sink_fn)(const char *line, unsigned long len);
void log_set_sink(log_sink_fn fn);

/* Formats the timestamp prefix "YYYYMMDD HH:MM:SS.mmm" into buf (>= 22 bytes). */
void log_timestamp(char *buf, unsigned long size);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
