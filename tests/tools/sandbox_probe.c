/*
 * sandbox_probe — a contract for tests/integration/test_sandbox.py: it
 * tries what the contract sandbox (supervisor/contract.c) must refuse and
 * writes what happened into sandbox.json in its working directory (the
 * state). Each result is "ok" (or "connected", "read", "wrote") when the
 * attempt worked, else the errno name.
 *
 * Tried: connecting to the node's user port; reading the node's TLS key,
 * /etc/shadow; seeing other processes in /proc and signalling or tracing
 * a host pid, its init and its own child; PTRACE_TRACEME in a child;
 * creating files outside the state; raising RLIMIT_NOFILE. The ports, paths
 * and the host pid come from the environment (HPD_TEST_*).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static FILE *out;
static int first = 1;

static const char *
result(int r, const char *ok)
{
	return r == 0 ? ok : strerrorname_np(errno);
}

static void
put(const char *key, const char *val)
{
	fprintf(out, "%s\"%s\": \"%s\"", first ? "" : ",\n", key, val);
	first = 0;
}

static void
put_num(const char *key, long long v)
{
	fprintf(out, "%s\"%s\": %lld", first ? "" : ",\n", key, v);
	first = 0;
}

static int
try_connect(const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int s, r;

	if (port == NULL)
		return errno = EINVAL, -1;
	sa.sin_port = htons((uint16_t)atoi(port));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	r = connect(s, (struct sockaddr *)&sa, sizeof(sa));
	close(s);
	return r;
}

static int
try_read(const char *path)
{
	char b[16];
	int fd;
	ssize_t n;

	if (path == NULL)
		return errno = EINVAL, -1;
	if ((fd = open(path, O_RDONLY)) < 0)
		return -1;
	n = read(fd, b, sizeof(b));
	close(fd);
	return n < 0 ? -1 : 0;
}

static int
try_create(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);

	if (fd < 0)
		return -1;
	(void)!write(fd, "escaped\n", 8);
	close(fd);
	return 0;
}

/* Every process visible in /proc, as [[pid, "comm"]...]. */
static void
put_procs(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	fprintf(out, "%s\"procs\": [", first ? "" : ",\n");
	first = 0;
	while (d != NULL && (e = readdir(d)) != NULL) {
		char path[300], comm[64] = "";
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		if ((f = fopen(path, "r")) != NULL) {
			if (fgets(comm, sizeof(comm), f) != NULL)
				comm[strcspn(comm, "\n\"\\")] = '\0';
			fclose(f);
		}
		fprintf(out, "%s[%s, \"%s\"]", n++ ? ", " : "", e->d_name,
		    comm);
	}
	fprintf(out, "]");
	if (d != NULL)
		closedir(d);
}

/* PTRACE_TRACEME in a child; its exit code carries the errno. */
static int
try_traceme(void)
{
	int st;
	pid_t c = fork();

	if (c < 0)
		return -1;
	if (c == 0)
		_exit(ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0 ? 0 : errno);
	if (waitpid(c, &st, 0) < 0)
		return -1;
	errno = WEXITSTATUS(st);
	return errno == 0 ? 0 : -1;
}

/* PTRACE_ATTACH to a child of our own (same uid, no other barrier). */
static int
try_trace_child(void)
{
	pid_t c = fork();
	int r;

	if (c < 0)
		return -1;
	if (c == 0) {
		pause();
		_exit(0);
	}
	r = (int)ptrace(PTRACE_ATTACH, c, NULL, NULL);
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	return r == 0 ? 0 : -1;
}

int
main(void)
{
	const char *dir = getenv("HPD_TEST_NODE_DIR");
	pid_t host = (pid_t)atoi(getenv("HPD_TEST_HOST_PID") ?
	    getenv("HPD_TEST_HOST_PID") : "0");
	char path[4096];
	struct rlimit rl;
	int r;

	if ((out = fopen("sandbox.json.tmp", "w")) == NULL)
		return 1;
	fprintf(out, "{\n");
	put_num("uid", getuid());
	put_num("pid", getpid());
	put_num("ppid", getppid());
	put("connect_user", result(try_connect(getenv("HPD_TEST_USER_PORT")),
	    "connected"));
	put("read_key", result(try_read(getenv("HPD_TEST_KEY")), "read"));
	put("read_shadow", result(try_read("/etc/shadow"), "read"));
	put_procs();
	put("kill_host", result(kill(host, 0), "ok"));
	put("ptrace_host", result((int)ptrace(PTRACE_ATTACH, host, NULL, NULL),
	    "ok"));
	put("ptrace_init", result((int)ptrace(PTRACE_ATTACH, getppid(), NULL,
	    NULL), "ok"));
	put("ptrace_child", result(try_trace_child(), "ok"));
	put("traceme", result(try_traceme(), "ok"));
	if (dir != NULL) {
		snprintf(path, sizeof(path), "%s/escape", dir);
		put("write_node_dir", result(try_create(path), "wrote"));
		snprintf(path, sizeof(path), "%s/log/escape", dir);
		put("write_node_log", result(try_create(path), "wrote"));
	}
	put("write_root", result(try_create("/escape"), "wrote"));
	put("write_etc", result(try_create("/etc/escape"), "wrote"));
	put("write_tmp", result(try_create("/tmp/hpd-sandbox-escape"),
	    "wrote"));
	put("write_var_tmp", result(try_create("/var/tmp/hpd-sandbox-escape"),
	    "wrote"));
	put("write_dev_shm", result(try_create("/dev/shm/hpd-sandbox-escape"),
	    "wrote"));
	getrlimit(RLIMIT_NOFILE, &rl);
	put_num("nofile_cur", (long long)rl.rlim_cur);
	put_num("nofile_max", (long long)rl.rlim_max);
	rl.rlim_cur = rl.rlim_max = rl.rlim_max + 1;
	put("nofile_raise", result(setrlimit(RLIMIT_NOFILE, &rl), "ok"));
	fprintf(out, "\n}\n");
	r = fclose(out);
	if (r != 0 || rename("sandbox.json.tmp", "sandbox.json") != 0)
		return 1;
	return 0;
}
