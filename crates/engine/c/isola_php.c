/*
 * Isola's engine host: the official PHP engine (embed SAPI library) started once in a
 * zygote, and workers forked from it that serve FastCGI on one connected socket each.
 *
 * Owns: the SAPI module (named "cgi-fcgi" so that opcache enables itself and apps see the
 * PHP_SAPI they see under php-cgi), module start-up, the control loop that forks workers on
 * the pool's command, the worker's request loop with every PHP callback, and the worker's
 * tracer thread that reports the running request's PHP stack (slow-request backtraces).
 *
 * Never: decides when to fork or kill (the pool does), reaps workers (they are Isola's
 * children through CLONE_PARENT), opens sockets, or lets a PHP bailout (longjmp) cross
 * into Rust: every callback and every zend_try lives in this file.
 *
 * Control protocol (SOCK_SEQPACKET, one message per datagram):
 *   zygote -> Isola, once: "R <php version> opcache=<0|1> threads=<n>" or "E <reason>"
 *   Isola -> zygote: "S" with SCM_RIGHTS [worker socket, worker stderr, worker trace socket]
 *   zygote -> Isola: "P <pid>" or "E <errno> <reason>"
 * EOF on the control socket ends the zygote; running workers are unaffected.
 *
 * Worker -> Isola is FastCGI 1.0 plus one record type of Isola's own, ISOLA_INTERIM: an
 * informational (1xx) head for headers_send(103), sent while the response is still open.
 *
 * Trace protocol (the worker's trace socket, SOCK_SEQPACKET, served by its tracer thread):
 *   Isola -> worker: "T <depth>"
 *   worker -> Isola: the PHP stack of the running request, innermost first, one
 *   "F\t<function>\t<file>\t<line>\n" per frame, then "M\n" when frames were left out,
 *   then "E\n".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "php.h"
#include "php_ini.h"
#include "php_main.h"
#include "php_variables.h"

/* Exported by libphp (main/php_ini.c) without a declaration in its headers. */
extern PHPAPI char *php_ini_opened_path;
#include "SAPI.h"
#include "ext/standard/info.h"
#include "main/php_output.h"
#include "zend_exceptions.h"
#include "zend_extensions.h"
#include "zend_signal.h"

/* FastCGI 1.0 */
#define FCGI_BEGIN_REQUEST 1
#define FCGI_ABORT_REQUEST 2
#define FCGI_END_REQUEST 3
#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_STDERR 7
#define FCGI_GET_VALUES 9
#define FCGI_GET_VALUES_RESULT 10
#define FCGI_UNKNOWN_TYPE 11
#define FCGI_RESPONDER 1
#define FCGI_KEEP_CONN 1
#define FCGI_REQUEST_COMPLETE 0
#define FCGI_UNKNOWN_ROLE 3
/* Isola's own record type (not FastCGI 1.0's): an interim 1xx head, a CGI head the front
 * sends to the client ahead of the final response. The front reads it from this backend
 * only (isola_fastcgi::record::ISOLA_INTERIM). */
#define ISOLA_INTERIM 103
/* Content of one interim record: it must fit a single record. */
#define INTERIM_MAX 65535

#define REC_MAX (8 + 65535 + 255)
/* Output is sent in records of at most this much; a flush sends what is buffered. */
#define OUT_CHUNK 32768
/* Params of one request: a bound, so a peer cannot make a worker allocate without limit. */
#define MAX_PARAMS_BYTES (1024 * 1024)
#define MAX_PARAMS 4096

typedef struct {
	const char *name;
	size_t name_len;
	char *value; /* NUL-terminated inside the params buffer */
	size_t value_len;
} param;

typedef struct {
	int fd;
	/* Read side: whole records are assembled here. */
	unsigned char in[REC_MAX];
	size_t in_len;
	/* STDIN content of the current record not yet handed to PHP. */
	size_t stdin_off, stdin_left;
	int stdin_eof;
	/* Write side: one record being filled (8-byte header reserved). */
	/* Room after the chunk for its padding, the empty STDOUT and the END_REQUEST, so that a
	 * whole small response leaves in one write. */
	unsigned char out[8 + OUT_CHUNK + 8 + 8 + 16];
	size_t out_len;
	uint16_t req_id;
	int in_request;
	int aborted;  /* the peer sent ABORT_REQUEST or the socket broke */
	int finished; /* fastcgi_finish_request(): the response stream is closed */
	int waiting;  /* between requests: a worker script may be stopped here */
	int broken;   /* a write failed: no END_REQUEST can be sent either */
	/* Params of the current request. */
	char *pbuf;
	size_t plen, pcap;
	param *params;
	size_t nparams;
} conn_t;

static conn_t *conn;
/* Set in a process the script forked (pcntl_fork, through glibc's fork and its atfork
 * handlers): it shares the connection, and its output or exit must not end the parent's
 * response. Workers themselves are made by a raw clone, which runs no handler. A flag, not a
 * getpid() per write: that was a system call for every record. */
static volatile int forked_child;

/* This process runs a worker script (worker mode). */
static int worker_mode;
/* $_SERVER['MAX_REQUESTS'] of every request, as FrankenPHP's docs have scripts read it. */
static char *worker_max_requests;
/* Set by SIGTERM (Isola retiring a worker, or stopping). In worker mode SIGTERM is blocked
 * but while waiting between requests, so a handler always finishes its request first. */
static volatile sig_atomic_t stop_requested;
static sigset_t wait_mask;
/* Set in END_REQUEST's appStatus when the worker ends after this request. */
#define APP_STATUS_LAST 0x80000000u

static void mark_forked_child(void)
{
	forked_child = 1;
}

/* ---- low-level socket I/O ---- */

static int writev_all(int fd, struct iovec *iov, int cnt)
{
	if (forked_child) {
		return 0;
	}
	while (cnt > 0) {
		ssize_t w = writev(fd, iov, cnt);
		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -1;
		}
		while (cnt > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
	return writev_all(fd, &iov, 1);
}

static void put_header(unsigned char *h, int type, uint16_t id, size_t len, size_t pad)
{
	h[0] = 1;
	h[1] = (unsigned char)type;
	h[2] = (unsigned char)(id >> 8);
	h[3] = (unsigned char)id;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = (unsigned char)pad;
	h[7] = 0;
}

/* One record, content up to 65535 bytes, padded to 8. */
static int send_record(conn_t *c, int type, uint16_t id, const void *data, size_t len)
{
	static const unsigned char zeros[8];
	unsigned char h[8];
	size_t pad = (8 - (len % 8)) % 8;
	if (c->broken) {
		return -1;
	}
	put_header(h, type, id, len, pad);
	struct iovec iov[3] = {
		{.iov_base = h, .iov_len = 8},
		{.iov_base = (void *)data, .iov_len = len},
		{.iov_base = (void *)zeros, .iov_len = pad},
	};
	if (writev_all(c->fd, iov, 3) < 0) {
		c->broken = 1;
		c->aborted = 1;
		return -1;
	}
	return 0;
}

/* Sends the buffered STDOUT content as one record (header and content in one write). */
static int flush_out(conn_t *c)
{
	size_t len = c->out_len;
	size_t pad = (8 - (len % 8)) % 8;
	if (len == 0) {
		return 0;
	}
	c->out_len = 0;
	if (c->broken) {
		return -1;
	}
	put_header(c->out, FCGI_STDOUT, c->req_id, len, pad);
	memset(c->out + 8 + len, 0, pad);
	if (write_all(c->fd, c->out, 8 + len + pad) < 0) {
		c->broken = 1;
		c->aborted = 1;
		return -1;
	}
	return 0;
}

static size_t put_end_request(unsigned char *p, uint32_t app_status, int protocol_status,
			      uint16_t id)
{
	put_header(p, FCGI_END_REQUEST, id, 8, 0);
	p[8] = (unsigned char)(app_status >> 24);
	p[9] = (unsigned char)(app_status >> 16);
	p[10] = (unsigned char)(app_status >> 8);
	p[11] = (unsigned char)app_status;
	p[12] = (unsigned char)protocol_status;
	p[13] = p[14] = p[15] = 0;
	return 16;
}

/* The buffered STDOUT content, the empty STDOUT that closes the stream and, with `end`, the
 * END_REQUEST: one write where there were four, and one wake-up of Isola instead of several. */
static int close_stdout(conn_t *c, int end, uint32_t app_status)
{
	size_t n = 0;
	if (c->out_len > 0) {
		size_t len = c->out_len;
		size_t pad = (8 - (len % 8)) % 8;
		put_header(c->out, FCGI_STDOUT, c->req_id, len, pad);
		memset(c->out + 8 + len, 0, pad);
		n = 8 + len + pad;
	}
	c->out_len = 0;
	if (c->broken) {
		return -1;
	}
	put_header(c->out + n, FCGI_STDOUT, c->req_id, 0, 0);
	n += 8;
	if (end) {
		n += put_end_request(c->out + n, app_status, FCGI_REQUEST_COMPLETE, c->req_id);
	}
	if (write_all(c->fd, c->out, n) < 0) {
		c->broken = 1;
		c->aborted = 1;
		return -1;
	}
	return 0;
}

/*
 * Reads until one whole record is in c->in. Returns 1 with the record at c->in, 0 on EOF
 * between records, -1 on error or EOF inside a record.
 */
static int read_record(conn_t *c)
{
	for (;;) {
		if (c->in_len >= 8) {
			size_t need = 8 + ((size_t)c->in[4] << 8 | c->in[5]) + c->in[6];
			if (c->in[0] != 1) {
				return -1;
			}
			if (c->in_len >= need) {
				return 1;
			}
		}
		if (c->waiting && worker_mode) {
			/* SIGTERM is let through only while blocked here. */
			struct pollfd pfd = {c->fd, POLLIN, 0};
			if (ppoll(&pfd, 1, NULL, &wait_mask) < 0) {
				if (errno == EINTR && !stop_requested) {
					continue;
				}
				return -1;
			}
		}
		ssize_t r = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
		if (r < 0) {
			if (errno == EINTR && !stop_requested) {
				continue;
			}
			return -1;
		}
		if (r == 0) {
			return c->in_len == 0 ? 0 : -1;
		}
		c->in_len += (size_t)r;
	}
}

static size_t rec_len(conn_t *c)
{
	return ((size_t)c->in[4] << 8) | c->in[5];
}

static uint16_t rec_id(conn_t *c)
{
	return (uint16_t)(((uint16_t)c->in[2] << 8) | c->in[3]);
}

/* Drops the record at the front of c->in, keeping any bytes of the next ones. */
static void consume_record(conn_t *c)
{
	size_t total = 8 + rec_len(c) + c->in[6];
	memmove(c->in, c->in + total, c->in_len - total);
	c->in_len -= total;
}

/* ---- FastCGI name-value pairs ---- */

static int read_nv_len(const unsigned char **p, const unsigned char *end, size_t *out)
{
	if (*p >= end) {
		return -1;
	}
	if (**p & 0x80) {
		if (end - *p < 4) {
			return -1;
		}
		*out = ((size_t)((*p)[0] & 0x7f) << 24) | ((size_t)(*p)[1] << 16) | ((size_t)(*p)[2] << 8) |
		       (*p)[3];
		*p += 4;
	} else {
		*out = **p;
		*p += 1;
	}
	return 0;
}

/*
 * Splits the params stream into pairs. Each value is NUL-terminated in place, which the
 * format allows because it is rewritten into a fresh buffer with one spare byte per pair.
 */
static int parse_params(conn_t *c)
{
	const unsigned char *p = (const unsigned char *)c->pbuf, *end = p + c->plen;
	size_t cap = 64, n = 0;
	char *store = malloc(c->plen * 2 + 2);
	size_t used = 0;
	param *ps = malloc(cap * sizeof(param));
	if (!store || !ps) {
		free(store);
		free(ps);
		return -1;
	}
	while (p < end) {
		size_t nl, vl;
		if (read_nv_len(&p, end, &nl) < 0 || read_nv_len(&p, end, &vl) < 0 ||
		    (size_t)(end - p) < nl || (size_t)(end - p) - nl < vl || n >= MAX_PARAMS) {
			free(store);
			free(ps);
			return -1;
		}
		if (n == cap) {
			param *grown = realloc(ps, cap * 2 * sizeof(param));
			if (!grown) {
				free(store);
				free(ps);
				return -1;
			}
			ps = grown;
			cap *= 2;
		}
		char *name = store + used;
		memcpy(name, p, nl);
		name[nl] = 0;
		used += nl + 1;
		p += nl;
		char *value = store + used;
		memcpy(value, p, vl);
		value[vl] = 0;
		used += vl + 1;
		p += vl;
		ps[n].name = name;
		ps[n].name_len = nl;
		ps[n].value = value;
		ps[n].value_len = vl;
		n++;
	}
	free(c->pbuf);
	c->pbuf = store;
	c->plen = used;
	c->pcap = c->plen * 2 + 2;
	c->params = ps;
	c->nparams = n;
	return 0;
}

static char *param_get(const char *name, size_t len)
{
	if (!conn || !conn->params) {
		return NULL;
	}
	for (size_t i = 0; i < conn->nparams; i++) {
		if (conn->params[i].name_len == len && memcmp(conn->params[i].name, name, len) == 0) {
			return conn->params[i].value;
		}
	}
	return NULL;
}

#define PARAM(lit) param_get(lit, sizeof(lit) - 1)

/* ---- client abort ---- */

/*
 * Whether Isola sent ABORT_REQUEST for this request (its client went away). Checked when
 * output is pushed, without blocking: what php-fpm learns from a failed write, a worker
 * behind Isola learns from this record, because Isola keeps reading the response to keep
 * the worker reusable.
 */
static int peer_aborted(conn_t *c)
{
	if (c->aborted) {
		return 1;
	}
	if (c->in_len < sizeof(c->in)) {
		ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
		if (r == 0) {
			c->aborted = 1;
			return 1;
		}
		if (r > 0) {
			c->in_len += (size_t)r;
		}
	}
	/* Whole records already here (the body's end, a partly read STDIN record) stay for
	 * read_post and the idle loop; an ABORT_REQUEST among them is taken out. */
	size_t off = 0;
	while (c->in_len - off >= 8) {
		unsigned char *h = c->in + off;
		size_t total = 8 + (((size_t)h[4] << 8) | h[5]) + h[6];
		if (c->in_len - off < total) {
			break;
		}
		if (h[1] == FCGI_ABORT_REQUEST && (uint16_t)((h[2] << 8) | h[3]) == c->req_id) {
			memmove(h, h + total, c->in_len - off - total);
			c->in_len -= total;
			c->aborted = 1;
			return 1;
		}
		off += total;
	}
	return 0;
}

/* ---- SAPI callbacks ---- */

static size_t isola_ub_write(const char *str, size_t len)
{
	conn_t *c = conn;
	size_t left = len;
	if (!c || c->finished || c->broken) {
		return len;
	}
	while (left > 0) {
		size_t room = OUT_CHUNK - c->out_len;
		size_t n = left < room ? left : room;
		memcpy(c->out + 8 + c->out_len, str, n);
		c->out_len += n;
		str += n;
		left -= n;
		if (c->out_len == OUT_CHUNK) {
			if (flush_out(c) < 0 || peer_aborted(c)) {
				php_handle_aborted_connection();
				return len;
			}
		}
	}
	return len;
}

static void isola_flush(void *server_context)
{
	conn_t *c = server_context;
	if (!c || c->finished) {
		return;
	}
	if (!SG(headers_sent)) {
		sapi_send_headers();
	}
	if (flush_out(c) < 0 || peer_aborted(c)) {
		if (!SG(request_info).headers_only) {
			php_handle_aborted_connection();
		}
	}
}

static void out_str(const char *s, size_t n)
{
	/* Headers bypass output buffering but share the STDOUT stream. */
	isola_ub_write(s, n);
}

/* php-cgi's sapi_cgi_send_headers: a Status line unless 200, `Status:` from header()
 * honoured, Content-Type dropped on 304. */
static int isola_send_headers(sapi_headers_struct *sapi_headers)
{
	char buf[256];
	int len = 0;
	int response_status = SG(sapi_headers).http_response_code;
	sapi_header_struct *h;
	zend_llist_position pos;
	bool ignore_status = 0;

	if (SG(request_info).no_headers == 1) {
		return SAPI_HEADER_SENT_SUCCESSFULLY;
	}
	if (SG(sapi_headers).http_response_code != 200) {
		bool has_status = 0;
		char *s;
		if (SG(sapi_headers).http_status_line &&
		    (s = strchr(SG(sapi_headers).http_status_line, ' ')) != 0 &&
		    (s - SG(sapi_headers).http_status_line) >= 5 &&
		    strncasecmp(SG(sapi_headers).http_status_line, "HTTP/", 5) == 0) {
			len = snprintf(buf, sizeof(buf), "Status:%s", s);
			response_status = atoi(s + 1);
		} else {
			h = (sapi_header_struct *)zend_llist_get_first_ex(&sapi_headers->headers, &pos);
			while (h) {
				if (h->header_len > sizeof("Status:") - 1 &&
				    strncasecmp(h->header, "Status:", sizeof("Status:") - 1) == 0) {
					has_status = 1;
					break;
				}
				h = (sapi_header_struct *)zend_llist_get_next_ex(&sapi_headers->headers, &pos);
			}
			if (!has_status) {
				len = snprintf(buf, sizeof(buf), "Status: %d", SG(sapi_headers).http_response_code);
			}
		}
		if (len > 0 && !has_status) {
			if ((size_t)len >= sizeof(buf)) {
				len = sizeof(buf) - 1;
			}
			out_str(buf, (size_t)len);
			out_str("\r\n", 2);
		}
	}
	h = (sapi_header_struct *)zend_llist_get_first_ex(&sapi_headers->headers, &pos);
	while (h) {
		if (h->header_len) {
			if (h->header_len > sizeof("Status:") - 1 &&
			    strncasecmp(h->header, "Status:", sizeof("Status:") - 1) == 0) {
				if (!ignore_status) {
					ignore_status = 1;
					out_str(h->header, h->header_len);
					out_str("\r\n", 2);
				}
			} else if (response_status == 304 && h->header_len > sizeof("Content-Type:") - 1 &&
				   strncasecmp(h->header, "Content-Type:", sizeof("Content-Type:") - 1) == 0) {
				/* dropped, as php-cgi does */
			} else {
				out_str(h->header, h->header_len);
				out_str("\r\n", 2);
			}
		}
		h = (sapi_header_struct *)zend_llist_get_next_ex(&sapi_headers->headers, &pos);
	}
	out_str("\r\n", 2);
	return SAPI_HEADER_SENT_SUCCESSFULLY;
}

/* Hands PHP up to `count` bytes of the request body, pulling STDIN records as needed:
 * the body is never held whole, and Isola's writes wait for PHP's reads. */
static size_t isola_read_post(char *buf, size_t count)
{
	conn_t *c = conn;
	size_t done = 0;
	if (!c) {
		return 0;
	}
	{
		zend_long left = SG(request_info).content_length - (zend_long)SG(read_post_bytes);
		if (left <= 0) {
			return 0;
		}
		if ((zend_ulong)left < count) {
			count = (size_t)left;
		}
	}
	while (done < count && !c->stdin_eof) {
		if (c->stdin_left > 0) {
			size_t n = count - done < c->stdin_left ? count - done : c->stdin_left;
			memcpy(buf + done, c->in + c->stdin_off, n);
			c->stdin_off += n;
			c->stdin_left -= n;
			done += n;
			if (c->stdin_left == 0) {
				consume_record(c);
			}
			continue;
		}
		int r = read_record(c);
		if (r <= 0) {
			c->stdin_eof = 1;
			c->aborted = 1;
			break;
		}
		if (rec_id(c) != c->req_id) {
			consume_record(c);
			continue;
		}
		switch (c->in[1]) {
		case FCGI_STDIN:
			if (rec_len(c) == 0) {
				consume_record(c);
				c->stdin_eof = 1;
			} else {
				c->stdin_off = 8;
				c->stdin_left = rec_len(c);
			}
			break;
		case FCGI_ABORT_REQUEST:
			consume_record(c);
			c->aborted = 1;
			c->stdin_eof = 1;
			break;
		default:
			consume_record(c);
		}
	}
	return done;
}

static char *isola_read_cookies(void)
{
	return PARAM("HTTP_COOKIE");
}

static char *isola_getenv(const char *name, size_t len)
{
	return param_get(name, len);
}

static void isola_register_variables(zval *track)
{
	/* php-cgi imports the process environment first, then every FastCGI param. */
	php_import_environment_variables(track);
	if (conn && conn->params) {
		for (size_t i = 0; i < conn->nparams; i++) {
			param *p = &conn->params[i];
			size_t new_len;
			char *v = p->value;
			if (sapi_module.input_filter(PARSE_SERVER, (char *)p->name, &v, p->value_len, &new_len)) {
				php_register_variable_safe((char *)p->name, v, new_len, track);
			}
		}
	}
	if (worker_mode) {
		php_register_variable_safe("FRANKENPHP_WORKER", "1", 1, track);
		if (worker_max_requests) {
			php_register_variable_safe("MAX_REQUESTS", worker_max_requests, strlen(worker_max_requests),
						   track);
		}
	}
	/* cgi.fix_pathinfo=1: PHP_SELF = SCRIPT_NAME + PATH_INFO. */
	const char *script_name = SG(request_info).request_uri ? SG(request_info).request_uri : "";
	const char *path_info = PARAM("PATH_INFO");
	size_t sl = strlen(script_name), pl = path_info ? strlen(path_info) : 0;
	char *self = emalloc(sl + pl + 1);
	memcpy(self, script_name, sl);
	if (pl) {
		memcpy(self + sl, path_info, pl);
	}
	self[sl + pl] = 0;
	size_t self_len = sl + pl;
	char *sv = self;
	if (sapi_module.input_filter(PARSE_SERVER, "PHP_SELF", &sv, self_len, &self_len)) {
		php_register_variable_safe("PHP_SELF", sv, self_len, track);
	}
	efree(self);
}

static void isola_log_message(const char *message, int syslog_type)
{
	(void)syslog_type;
	conn_t *c = conn;
	if (c && c->in_request && !c->broken && INI_BOOL("fastcgi.logging")) {
		size_t len = strlen(message);
		const char *p = message;
		/* One record per 65528 bytes: STDERR content is length-limited like STDOUT. */
		while (len > 0) {
			size_t n = len > 65528 ? 65528 : len;
			if (n == len) {
				char *line = malloc(n + 1);
				if (!line) {
					break;
				}
				memcpy(line, p, n);
				line[n] = '\n';
				send_record(c, FCGI_STDERR, c->req_id, line, n + 1);
				free(line);
			} else {
				send_record(c, FCGI_STDERR, c->req_id, p, n);
			}
			p += n;
			len -= n;
		}
		return;
	}
	fprintf(stderr, "%s\n", message);
}

/* ---- per-directory and .user.ini configuration, as php-cgi ---- */

typedef struct {
	HashTable *config;
	time_t expires;
} user_config_entry;

static HashTable user_config_cache;

static void user_config_entry_dtor(zval *el)
{
	user_config_entry *e = Z_PTR_P(el);
	zend_hash_destroy(e->config);
	free(e->config);
	free(e);
}

static void activate_user_config(char *path, size_t path_len, const char *doc_root, size_t doc_root_len,
				 size_t start)
{
	user_config_entry *entry = zend_hash_str_find_ptr(&user_config_cache, path, path_len);
	time_t now = (time_t)sapi_get_request_time();
	if (!entry) {
		entry = malloc(sizeof(*entry));
		if (!entry) {
			return;
		}
		entry->expires = 0;
		entry->config = malloc(sizeof(HashTable));
		if (!entry->config) {
			free(entry);
			return;
		}
		zend_hash_init(entry->config, 8, NULL, config_zval_dtor, 1);
		zend_hash_str_update_ptr(&user_config_cache, path, path_len, entry);
	}
	if (now > entry->expires) {
		char *s1, *s2;
		size_t s_len;
		zend_hash_clean(entry->config);
		if (path_len > doc_root_len) {
			s1 = (char *)doc_root;
			s2 = path;
			s_len = doc_root_len;
		} else {
			s1 = path;
			s2 = (char *)doc_root;
			s_len = path_len;
		}
		/* Inside the document root, .user.ini files are read from the root down. */
		if (strncmp(s1, s2, s_len) == 0) {
			char *ptr = s2 + start;
			while ((ptr = strchr(ptr, '/')) != NULL) {
				*ptr = 0;
				php_parse_user_ini_file(path, PG(user_ini_filename), entry->config);
				*ptr = '/';
				ptr++;
			}
		} else {
			php_parse_user_ini_file(path, PG(user_ini_filename), entry->config);
		}
		entry->expires = now + PG(user_ini_cache_ttl);
	}
	php_ini_activate_config(entry->config, PHP_INI_PERDIR, PHP_INI_STAGE_HTACCESS);
}

static int isola_activate(void)
{
	if (!SG(request_info).path_translated) {
		return FAILURE;
	}
	if (php_ini_has_per_host_config()) {
		char *server_name = PARAM("SERVER_NAME");
		if (server_name) {
			size_t n = strlen(server_name);
			char *lower = estrndup(server_name, n);
			zend_str_tolower(lower, n);
			php_ini_activate_per_host_config(lower, n);
			efree(lower);
		}
	}
	if (php_ini_has_per_dir_config() || (PG(user_ini_filename) && *PG(user_ini_filename))) {
		size_t path_len = strlen(SG(request_info).path_translated);
		char *path = emalloc(path_len + 2);
		memcpy(path, SG(request_info).path_translated, path_len + 1);
		path_len = zend_dirname(path, path_len);
		path[path_len++] = '/';
		path[path_len] = 0;
		php_ini_activate_per_dir_config(path, path_len);
		if (PG(user_ini_filename) && *PG(user_ini_filename)) {
			char *doc_root = PARAM("DOCUMENT_ROOT");
			if (doc_root) {
				size_t doc_root_len = strlen(doc_root);
				if (doc_root_len > 0 && doc_root[doc_root_len - 1] == '/') {
					--doc_root_len;
				}
				if (doc_root_len > 0) {
					activate_user_config(path, path_len, doc_root, doc_root_len, doc_root_len - 1);
				}
			}
		}
		efree(path);
	}
	return SUCCESS;
}

/* ---- functions php-cgi and php-fpm give scripts ---- */

static void add_request_header(zval *ret, const char *var, size_t var_len, const char *val, size_t val_len)
{
	if (var_len > 5 && memcmp(var, "HTTP_", 5) == 0) {
		char *name = emalloc(var_len - 5 + 1);
		const char *p = var + 5;
		char *o = name;
		*o++ = *p++;
		while (*p) {
			if (*p == '_') {
				*o++ = '-';
				p++;
				if (*p) {
					*o++ = *p++;
				}
			} else if (*p >= 'A' && *p <= 'Z') {
				*o++ = (char)(*p++ - 'A' + 'a');
			} else {
				*o++ = *p++;
			}
		}
		*o = 0;
		add_assoc_stringl_ex(ret, name, (size_t)(o - name), (char *)val, val_len);
		efree(name);
	} else if (var_len == sizeof("CONTENT_TYPE") - 1 && memcmp(var, "CONTENT_TYPE", var_len) == 0) {
		add_assoc_stringl_ex(ret, "Content-Type", sizeof("Content-Type") - 1, (char *)val, val_len);
	} else if (var_len == sizeof("CONTENT_LENGTH") - 1 && memcmp(var, "CONTENT_LENGTH", var_len) == 0) {
		add_assoc_stringl_ex(ret, "Content-Length", sizeof("Content-Length") - 1, (char *)val, val_len);
	}
}

PHP_FUNCTION(apache_request_headers)
{
	ZEND_PARSE_PARAMETERS_NONE();
	array_init(return_value);
	if (conn && conn->params) {
		for (size_t i = 0; i < conn->nparams; i++) {
			param *p = &conn->params[i];
			add_request_header(return_value, p->name, p->name_len, p->value, p->value_len);
		}
	}
}

static void add_response_header(sapi_header_struct *h, zval *ret)
{
	if (h->header_len > 0) {
		char *s = memchr(h->header, ':', h->header_len);
		if (s) {
			size_t len = (size_t)(s - h->header);
			do {
				s++;
			} while (*s == ' ' || *s == '\t');
			add_assoc_stringl_ex(ret, h->header, len, s, h->header_len - (size_t)(s - h->header));
		}
	}
}

PHP_FUNCTION(apache_response_headers)
{
	ZEND_PARSE_PARAMETERS_NONE();
	array_init(return_value);
	zend_llist_apply_with_argument(&SG(sapi_headers).headers, (llist_apply_with_arg_func_t)add_response_header,
				       return_value);
}

/* php-fpm's: the client gets the whole response now; the script runs on (its output is
 * discarded) and the worker stays busy until it ends, so the pool never hands it out early. */
PHP_FUNCTION(fastcgi_finish_request)
{
	ZEND_PARSE_PARAMETERS_NONE();
	conn_t *c = conn;
	if (!c || !c->in_request || c->finished) {
		RETURN_FALSE;
	}
	php_output_end_all();
	if (!SG(headers_sent)) {
		sapi_send_headers();
		SG(headers_sent) = 1;
	}
	close_stdout(c, 0, 0);
	c->finished = 1;
	RETURN_TRUE;
}

/* One header line, CRLF-terminated, appended to an interim head being built; 0 when it does
 * not fit. */
static int interim_put(char *buf, size_t *len, const char *s, size_t n)
{
	if (n + 2 > INTERIM_MAX - *len) {
		return 0;
	}
	memcpy(buf + *len, s, n);
	memcpy(buf + *len + n, "\r\n", 2);
	*len += n + 2;
	return 1;
}

/* An informational head with `status` and the headers set so far, as one ISOLA_INTERIM
 * record; the headers stay set for the final response. A SAPI_HEADER_* value, as
 * sapi_module.send_headers returns for FrankenPHP. Refused (SAPI_HEADER_SEND_FAILED) once the
 * final head has left, after fastcgi_finish_request(), in a process the script forked, and
 * when the head would not fit one record: then the hints are merely lost, which RFC 8297
 * allows. Status lines set by header() are left out: the status is ours. */
static int send_interim(int status)
{
	conn_t *c = conn;
	sapi_header_struct *h;
	zend_llist_position pos;
	char line[32];
	size_t len = 0;
	int ok;

	if (SG(request_info).no_headers == 1) {
		return SAPI_HEADER_SENT_SUCCESSFULLY;
	}
	if (!c || !c->in_request || c->finished || c->broken || forked_child || SG(headers_sent)) {
		return SAPI_HEADER_SEND_FAILED;
	}
	int n = snprintf(line, sizeof(line), "Status: %d", status);
	char *buf = emalloc(INTERIM_MAX);
	ok = n > 0 && interim_put(buf, &len, line, (size_t)n);
	h = (sapi_header_struct *)zend_llist_get_first_ex(&SG(sapi_headers).headers, &pos);
	while (ok && h) {
		if (h->header_len > 0 &&
		    !(h->header_len > sizeof("Status:") - 1 &&
		      strncasecmp(h->header, "Status:", sizeof("Status:") - 1) == 0)) {
			ok = interim_put(buf, &len, h->header, h->header_len);
		}
		h = (sapi_header_struct *)zend_llist_get_next_ex(&SG(sapi_headers).headers, &pos);
	}
	ok = ok && interim_put(buf, &len, "", 0);
	/* Nothing of the final response is buffered before its head (output only reaches
	 * ub_write once headers are sent), so this record cannot overtake any STDOUT. */
	ok = ok && flush_out(c) == 0 && send_record(c, ISOLA_INTERIM, c->req_id, buf, len) == 0;
	efree(buf);
	return ok ? SAPI_HEADER_SENT_SUCCESSFULLY : SAPI_HEADER_SEND_FAILED;
}

/* FrankenPHP's headers_send(): with a 1xx status the headers set so far leave now as an
 * informational response (103 Early Hints) and stay set; with any other status that status
 * becomes the response's and the final head is sent now, sapi_send_headers()'s result
 * returned. */
PHP_FUNCTION(headers_send)
{
	zend_long status = 200;

	ZEND_PARSE_PARAMETERS_START(0, 1)
		Z_PARAM_OPTIONAL
		Z_PARAM_LONG(status)
	ZEND_PARSE_PARAMETERS_END();

	if (status >= 100 && status < 200) {
		RETURN_LONG(send_interim((int)status));
	}
	if (!SG(headers_sent)) {
		SG(sapi_headers).http_response_code = (int)status;
	}
	RETURN_LONG(sapi_send_headers());
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_headers, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_finish, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_headers_send, 0, 0, IS_LONG, 0)
	ZEND_ARG_TYPE_INFO_WITH_DEFAULT_VALUE(0, status, IS_LONG, 0, "200")
ZEND_END_ARG_INFO()

static ZEND_FUNCTION(frankenphp_handle_request);

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_handle_request, 0, 1, _IS_BOOL, 0)
	ZEND_ARG_TYPE_INFO(0, handler, IS_CALLABLE, 0)
ZEND_END_ARG_INFO()

static const zend_function_entry isola_functions[] = {
	ZEND_FE(apache_request_headers, arginfo_headers)
	ZEND_FALIAS(getallheaders, apache_request_headers, arginfo_headers)
	ZEND_FE(apache_response_headers, arginfo_headers)
	ZEND_FE(fastcgi_finish_request, arginfo_finish)
	ZEND_FALIAS(frankenphp_finish_request, fastcgi_finish_request, arginfo_finish)
	ZEND_FE(headers_send, arginfo_headers_send)
	ZEND_FE(frankenphp_handle_request, arginfo_handle_request)
	ZEND_FALIAS(isola_handle_request, frankenphp_handle_request, arginfo_handle_request)
	ZEND_FE_END
};

/* The cgi-fcgi ini entries php-cgi registers, so ini_get() and phpinfo() agree. */
PHP_INI_BEGIN()
	PHP_INI_ENTRY("cgi.rfc2616_headers", "0", PHP_INI_ALL, NULL)
	PHP_INI_ENTRY("cgi.nph", "0", PHP_INI_ALL, NULL)
	PHP_INI_ENTRY("cgi.check_shebang_line", "1", PHP_INI_SYSTEM, NULL)
	PHP_INI_ENTRY("cgi.force_redirect", "1", PHP_INI_SYSTEM, NULL)
	PHP_INI_ENTRY("cgi.redirect_status_env", NULL, PHP_INI_SYSTEM, NULL)
	PHP_INI_ENTRY("cgi.fix_pathinfo", "1", PHP_INI_SYSTEM, NULL)
	PHP_INI_ENTRY("cgi.discard_path", "0", PHP_INI_SYSTEM, NULL)
	PHP_INI_ENTRY("fastcgi.logging", "1", PHP_INI_SYSTEM, NULL)
PHP_INI_END()

static PHP_MINIT_FUNCTION(isola)
{
	REGISTER_INI_ENTRIES();
	zend_hash_init(&user_config_cache, 8, NULL, user_config_entry_dtor, 1);
	return SUCCESS;
}

static PHP_MSHUTDOWN_FUNCTION(isola)
{
	UNREGISTER_INI_ENTRIES();
	return SUCCESS;
}

static PHP_MINFO_FUNCTION(isola)
{
	DISPLAY_INI_ENTRIES();
}

static zend_module_entry isola_module_entry = {
	STANDARD_MODULE_HEADER,
	"cgi-fcgi",
	isola_functions,
	PHP_MINIT(isola),
	PHP_MSHUTDOWN(isola),
	NULL,
	NULL,
	PHP_MINFO(isola),
	PHP_VERSION,
	STANDARD_MODULE_PROPERTIES,
};

static int isola_startup(sapi_module_struct *m)
{
	return php_module_startup(m, &isola_module_entry);
}

static int isola_deactivate(void)
{
	return SUCCESS;
}

static sapi_module_struct isola_sapi = {
	.name = "cgi-fcgi",
	.pretty_name = "CGI/FastCGI",
	.startup = isola_startup,
	.shutdown = php_module_shutdown_wrapper,
	.activate = isola_activate,
	.deactivate = isola_deactivate,
	.ub_write = isola_ub_write,
	.flush = isola_flush,
	.getenv = isola_getenv,
	.sapi_error = php_error,
	.send_headers = isola_send_headers,
	.read_post = isola_read_post,
	.read_cookies = isola_read_cookies,
	.register_server_variables = isola_register_variables,
	.log_message = isola_log_message,
	.php_ini_ignore_cwd = 1,
};

/* ---- one request ---- */

static void begin_request(conn_t *c);
static void end_response(conn_t *c, uint32_t app_status);

/* php-cgi's init_request_info for a server that splits PATH_INFO itself (Isola does):
 * SCRIPT_FILENAME is the script; PHP_SELF is SCRIPT_NAME + PATH_INFO. */
static void init_request_info(conn_t *c)
{
	char *script = PARAM("SCRIPT_FILENAME");
	char *content_length = PARAM("CONTENT_LENGTH");
	char *content_type = PARAM("CONTENT_TYPE");
	(void)c;
	SG(request_info).path_translated = NULL;
	SG(request_info).request_method = PARAM("REQUEST_METHOD");
	/* php-cgi never works the protocol out either (its "FIXME"): same redirects. */
	SG(request_info).proto_num = 1000;
	SG(request_info).query_string = PARAM("QUERY_STRING");
	SG(request_info).request_uri = PARAM("SCRIPT_NAME");
	SG(request_info).content_type = content_type ? content_type : "";
	SG(request_info).content_length = content_length ? atol(content_length) : 0;
	SG(request_info).cookie_data = NULL;
	SG(request_info).headers_only = 0;
	SG(sapi_headers).http_response_code = 200;
	if (script && *script) {
		/* malloc'd: request memory is reset at shutdown, this outlives it. */
		SG(request_info).path_translated = strdup(script);
	}
	php_handle_auth_data(PARAM("HTTP_AUTHORIZATION"));
}

static void send_end_request(conn_t *c, uint32_t app_status, int protocol_status, uint16_t id)
{
	unsigned char rec[16];
	put_end_request(rec, app_status, protocol_status, id);
	if (c->broken || write_all(c->fd, rec, sizeof(rec)) < 0) {
		c->broken = 1;
	}
}

/* Runs the request's script; the caller destroys `fh`, also after a bailout. */
static void run_primary(zend_file_handle *fh, const char *path)
{
	zend_stream_init_filename(fh, path);
	fh->primary_script = 1;
	php_execute_script(fh);
}

static void run_request(conn_t *c)
{
	zend_file_handle fh;
	int exit_status = 0;

	begin_request(c);

	int have_fh = 0;
	EG(exit_status) = 0;
	zend_first_try {
		if (php_request_startup() == FAILURE) {
			EG(exit_status) = 255;
		} else {
			struct stat st;
			const char *path = SG(request_info).path_translated;
			if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
				/* php-cgi's answer when SCRIPT_FILENAME names no file. */
				SG(sapi_headers).http_response_code = 404;
				PUTS("No input file specified.\n");
			} else {
				have_fh = 1;
				run_primary(&fh, path);
			}
		}
	} zend_end_try();
	if (have_fh) {
		zend_destroy_file_handle(&fh);
	}
	exit_status = EG(exit_status);
	php_request_shutdown(NULL);
	if (forked_child) {
		/* A process the script forked ends here: the connection is the parent's. */
		_exit(exit_status);
	}
	/* Body bytes PHP did not read stay in the socket; the idle loop discards them. */
	end_response(c, (uint32_t)exit_status);
}

/* GET_VALUES: answers the three standard names with this worker's one-at-a-time limits. */
static void answer_get_values(conn_t *c)
{
	static const unsigned char ans[] = {
		14, 1, 'F', 'C', 'G', 'I', '_', 'M', 'A', 'X', '_', 'C', 'O', 'N', 'N', 'S', '1',
		13, 1, 'F', 'C', 'G', 'I', '_', 'M', 'A', 'X', '_', 'R', 'E', 'Q', 'S', '1',
		15, 1, 'F', 'C', 'G', 'I', '_', 'M', 'P', 'X', 'S', '_', 'C', 'O', 'N', 'N', 'S', '0',
	};
	send_record(c, FCGI_GET_VALUES_RESULT, 0, ans, sizeof(ans));
}

/*
 * Reads records until one request's params are complete (1, params parsed into c), answers
 * management records on the way, and drops what belongs to no live request (the rest of a
 * body PHP did not read). 0 when the connection ended or a stop was asked for; a malformed
 * params stream ends the process, as the connection cannot be trusted any more.
 */
static int next_request(conn_t *c)
{
	int have_request = 0;
	for (;;) {
		if (stop_requested) {
			return 0;
		}
		c->waiting = 1;
		int r = read_record(c);
		c->waiting = 0;
		if (r <= 0) {
			return 0;
		}
		int type = c->in[1];
		uint16_t id = rec_id(c);
		size_t len = rec_len(c);
		if (id == 0) {
			if (type == FCGI_GET_VALUES) {
				answer_get_values(c);
			} else {
				unsigned char body[8] = {(unsigned char)type, 0, 0, 0, 0, 0, 0, 0};
				send_record(c, FCGI_UNKNOWN_TYPE, 0, body, 8);
			}
			consume_record(c);
		} else if (type == FCGI_BEGIN_REQUEST && len >= 8) {
			int role = (c->in[8] << 8) | c->in[9];
			consume_record(c);
			if (role != FCGI_RESPONDER) {
				send_end_request(c, 0, FCGI_UNKNOWN_ROLE, id);
				continue;
			}
			c->req_id = id;
			have_request = 1;
			free(c->pbuf);
			c->pbuf = NULL;
			c->plen = c->pcap = 0;
		} else if (type == FCGI_PARAMS && have_request && id == c->req_id) {
			if (len == 0) {
				consume_record(c);
				if (parse_params(c) < 0) {
					_exit(1);
				}
				return 1;
			}
			if (c->plen + len > MAX_PARAMS_BYTES) {
				_exit(1);
			}
			if (c->plen + len > c->pcap) {
				size_t cap = (c->plen + len) * 2;
				char *grown = realloc(c->pbuf, cap);
				if (!grown) {
					_exit(1);
				}
				c->pbuf = grown;
				c->pcap = cap;
			}
			memcpy(c->pbuf + c->plen, c->in + 8, len);
			c->plen += len;
			consume_record(c);
		} else if (type == FCGI_ABORT_REQUEST && have_request && id == c->req_id) {
			consume_record(c);
			have_request = 0;
			send_end_request(c, 0, FCGI_REQUEST_COMPLETE, id);
		} else {
			/* Leftover body of a finished request, or records for no request: dropped. */
			consume_record(c);
		}
		if (c->broken) {
			_exit(0);
		}
	}
}

static conn_t *worker_conn(int fd)
{
	static conn_t c0;
	int flags = fcntl(fd, F_GETFL);
	if (flags >= 0) {
		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	}
	c0.fd = fd;
	conn = &c0;
	return &c0;
}

/* Frees what one request's params and request info held. */
static void release_request(conn_t *c)
{
	if (SG(request_info).path_translated) {
		free(SG(request_info).path_translated);
		SG(request_info).path_translated = NULL;
	}
	c->in_request = 0;
	free(c->pbuf);
	free(c->params);
	c->pbuf = NULL;
	c->params = NULL;
	c->plen = c->pcap = c->nparams = 0;
}

static void worker_main(int fd)
{
	conn_t *c = worker_conn(fd);
	while (next_request(c)) {
		run_request(c);
		if (c->broken) {
			_exit(0);
		}
	}
	_exit(0);
}

/* ---- worker mode: a script that boots once and serves requests in a loop ---- */

/*
 * The script runs inside one long PHP request (its boot); each request it handles gets the
 * request-scoped parts of a start-up and shutdown around its handler (superglobals, output,
 * headers, the POST body and uploads, session and filter), adapted from FrankenPHP's
 * worker mode, whose contract (frankenphp_handle_request) scripts are written against.
 */
/* The boot request is still active (no request handled yet). */
static int boot_active;

static const char *MODULES_TO_RELOAD[] = {"filter", "session", NULL};

static void reload_modules(int startup)
{
	for (const char **name = MODULES_TO_RELOAD; *name; name++) {
		zend_module_entry *m = zend_hash_str_find_ptr(&module_registry, *name, strlen(*name));
		if (!m) {
			continue;
		}
		if (startup && m->request_startup_func) {
			m->request_startup_func(m->type, m->module_number);
		} else if (!startup && m->request_shutdown_func) {
			m->request_shutdown_func(m->type, m->module_number);
		}
	}
}

/* Every superglobal but $_ENV imported again from the new request. */
static void reset_super_globals(void)
{
	zend_try {
		zval *files = &PG(http_globals)[TRACK_VARS_FILES];
		zval_ptr_dtor_nogc(files);
		memset(files, 0, sizeof(*files));
	}
	zend_end_try();
	zend_string *env = ZSTR_KNOWN(ZEND_STR_AUTOGLOBAL_ENV);
	zend_string *server = ZSTR_KNOWN(ZEND_STR_AUTOGLOBAL_SERVER);
	zend_string *request = ZSTR_KNOWN(ZEND_STR_AUTOGLOBAL_REQUEST);
	zend_auto_global *ag;
	ZEND_HASH_MAP_FOREACH_PTR(CG(auto_globals), ag) {
		if (ag->name == env) {
			continue;
		}
		if (ag->name == server || ag->name == request || (!ag->jit && ag->auto_global_callback)) {
			/* $_SERVER and $_REQUEST are built on first use by the compiler (jit), which
			 * a running script never passes again: they are rebuilt here. */
			ag->armed = ag->auto_global_callback(ag->name);
		} else if (!ag->jit) {
			ag->armed = 0;
		}
	}
	ZEND_HASH_FOREACH_END();
}

/* The request-scoped half of php_request_shutdown(): the response goes out, the request's
 * memory (body, uploads, headers) is released; the script's own state stays. */
static void worker_request_shutdown(void)
{
	zend_try { php_output_end_all(); }
	zend_end_try();
	reload_modules(0);
	zend_try { php_output_deactivate(); }
	zend_end_try();
	zend_try { sapi_deactivate(); }
	zend_end_try();
	zend_set_memory_limit(PG(memory_limit));
}

/* The request-scoped half of php_request_startup(). */
static int worker_request_startup(void)
{
	int ok = SUCCESS;
	zend_try {
		php_output_activate();
		PG(header_is_being_sent) = 0;
		PG(connection_status) = PHP_CONNECTION_NORMAL;
		sapi_activate();
		if (PG(expose_php)) {
			sapi_add_header(SAPI_PHP_VERSION_HEADER, sizeof(SAPI_PHP_VERSION_HEADER) - 1, 1);
		}
		if (PG(output_handler) && PG(output_handler)[0]) {
			zval oh;
			ZVAL_STRING(&oh, PG(output_handler));
			php_output_start_user(&oh, 0, PHP_OUTPUT_HANDLER_STDFLAGS);
			zval_ptr_dtor(&oh);
		} else if (PG(output_buffering)) {
			php_output_start_user(NULL, PG(output_buffering) > 1 ? PG(output_buffering) : 0,
					      PHP_OUTPUT_HANDLER_STDFLAGS);
		} else if (PG(implicit_flush)) {
			php_output_set_implicit_flush(1);
		}
		reset_super_globals();
		reload_modules(1);
	}
	zend_catch { ok = FAILURE; }
	zend_end_try();
	SG(sapi_started) = 1;
	return ok;
}

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

/* SIGTERM becomes "stop": the wait for a request ends, the script's loop returns and its
 * own shutdown code runs, as FrankenPHP's does. */
static void catch_stop(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, &wait_mask);
	sigdelset(&wait_mask, SIGTERM);
}

static int wait_for_request(conn_t *c)
{
	return next_request(c) && !stop_requested;
}

/* Ends the response of the request the worker is serving (STDOUT's end, END_REQUEST). */
static void end_response(conn_t *c, uint32_t app_status)
{
	if (!c->finished) {
		close_stdout(c, 1, app_status);
	} else {
		send_end_request(c, app_status, FCGI_REQUEST_COMPLETE, c->req_id);
	}
	release_request(c);
}

static void begin_request(conn_t *c)
{
	c->in_request = 1;
	c->aborted = 0;
	c->finished = 0;
	c->stdin_eof = 0;
	c->stdin_left = 0;
	c->out_len = 0;
	SG(server_context) = c;
	init_request_info(c);
}

static ZEND_FUNCTION(frankenphp_handle_request)
{
	zend_fcall_info fci;
	zend_fcall_info_cache fcc;
	ZEND_PARSE_PARAMETERS_START(1, 1)
	Z_PARAM_FUNC(fci, fcc)
	ZEND_PARSE_PARAMETERS_END();
	conn_t *c = conn;
	if (!worker_mode || !c) {
		zend_throw_exception(zend_ce_exception,
				     "frankenphp_handle_request() called while not in worker mode", 0);
		RETURN_THROWS();
	}
	if (c->in_request) {
		zend_throw_exception(zend_ce_exception,
				     "frankenphp_handle_request() called from inside a request handler", 0);
		RETURN_THROWS();
	}
	if (boot_active) {
		/* The boot's own request context ends where serving begins. */
		worker_request_shutdown();
		release_request(c);
		boot_active = 0;
	}
	zend_unset_timeout();
	int have = wait_for_request(c);
	if (have) {
		begin_request(c);
	} else {
		/* Stopping: the script's code after its loop runs in an empty request. */
		SG(server_context) = c;
		SG(request_info).request_method = NULL;
		SG(request_info).query_string = NULL;
		SG(request_info).content_length = 0;
		SG(request_info).content_type = NULL;
		SG(request_info).cookie_data = NULL;
	}
	if (worker_request_startup() == FAILURE || !have) {
		if (have) {
			end_response(c, 255);
		}
		RETURN_FALSE;
	}
	zend_set_timeout(INI_INT("max_execution_time"), 0);
	zval retval;
	ZVAL_UNDEF(&retval);
	fci.retval = &retval;
	if (zend_call_function(&fci, &fcc) == SUCCESS) {
		zval_ptr_dtor(&retval);
	}
	if (EG(exception) && !zend_is_unwind_exit(EG(exception)) && !zend_is_graceful_exit(EG(exception))) {
		/* An uncaught exception is a fatal error of this request: it is reported as PHP
		 * reports one (500 with display_errors off) and the worker boots again. */
		zend_exception_error(EG(exception), E_ERROR);
		zend_bailout();
	}
	zend_unset_timeout();
	/* exit() in the handler: the script unwinds and the process ends after this. */
	uint32_t last = EG(exception) ? APP_STATUS_LAST : 0;
	worker_request_shutdown();
	end_response(c, ((uint32_t)EG(exit_status) & 0xff) | last);
	RETURN_TRUE;
}

/*
 * The worker process's life in worker mode: boot the script with `boot` (FastCGI-encoded
 * params: SCRIPT_FILENAME, DOCUMENT_ROOT...) as its request, let it loop, and end when it
 * returns. A request in progress when the script stops (exit() or a fatal error in the
 * handler) still gets its response; the process then ends and the pool forks a fresh one.
 */
static void worker_script_main(int fd, const unsigned char *boot, size_t boot_len)
{
	conn_t *c = worker_conn(fd);
	zend_file_handle fh;
	int have_fh = 0;
	worker_mode = 1;
	catch_stop();
	c->pbuf = malloc(boot_len ? boot_len : 1);
	if (!c->pbuf) {
		_exit(1);
	}
	memcpy(c->pbuf, boot, boot_len);
	c->plen = c->pcap = boot_len;
	if (parse_params(c) < 0) {
		_exit(1);
	}
	if (PARAM("MAX_REQUESTS")) {
		worker_max_requests = strdup(PARAM("MAX_REQUESTS"));
	}
	/* The boot is no FastCGI request: its output is dropped, its log lines go to stderr. */
	c->finished = 1;
	SG(server_context) = c;
	init_request_info(c);
	boot_active = 1;
	const char *path = SG(request_info).path_translated;
	zend_first_try {
		if (php_request_startup() == SUCCESS && path) {
			/* A worker boots after its code changed (the edit watch, a reload): opcache
			 * must look at the files now, not when its revalidate_freq says. Includes
			 * happen at boot only, so the stats cost nothing per request. */
			zend_string *freq = zend_string_init("opcache.revalidate_freq",
							     sizeof("opcache.revalidate_freq") - 1, 0);
			zend_alter_ini_entry_chars(freq, "0", 1, ZEND_INI_USER, ZEND_INI_STAGE_RUNTIME);
			zend_string_release(freq);
			have_fh = 1;
			run_primary(&fh, path);
		}
	} zend_end_try();
	if (have_fh) {
		zend_destroy_file_handle(&fh);
	}
	int served = !boot_active;
	uint32_t status = (uint32_t)EG(exit_status);
	php_request_shutdown(NULL);
	if (forked_child) {
		_exit((int)status);
	}
	if (c->in_request) {
		end_response(c, (status ? status & 0xff : 255) | APP_STATUS_LAST);
	}
	/* 0: the script ended after serving (its loop returned, exit() in a handler); 1: it
	 * never reached its loop, which the pool reads as a failed start. */
	_exit(served ? 0 : 1);
}

/* ---- slow-request backtraces ---- */

/*
 * A thread of the worker that answers Isola's "T <depth>" with the PHP stack of the request
 * the main thread runs, read from EG(current_execute_data) while that request goes on. A
 * thread rather than a signal handler: a signal would cut short the request's sleep(),
 * poll() or stream_select() (EINTR), which a script sees; the thread changes nothing the
 * request can observe. It reads memory the main thread may be changing, so null pointers
 * and oplines outside their function are skipped, text is copied with a bound, and a fault
 * while walking ends the walk (the reply then says frames are missing), not the worker.
 */
#define TRACE_REPLY_MAX 65536
#define TRACE_NAME_MAX 512
#define TRACE_FILE_MAX 1024
/* Room one frame line can take: its two strings, a class name, the line number, tabs. */
#define TRACE_LINE_MAX (2 * TRACE_NAME_MAX + TRACE_FILE_MAX + 32)

static int trace_fd = -1;
static pthread_t tracer_thread;
/* The fault handlers in place before a walk, put back after it (and for a fault of the
 * request itself during one). */
static struct sigaction saved_segv, saved_bus;
static sigjmp_buf trace_jmp;
static volatile sig_atomic_t trace_walking;

typedef struct {
	char *p;
	size_t len, cap;
} tbuf;

static void tb_put(tbuf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n && b->len < b->cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		/* Tabs and newlines delimit the reply; no control byte reaches the log. */
		b->p[b->len++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
}

static void tb_lit(tbuf *b, const char *s)
{
	size_t n = strlen(s);
	if (b->cap - b->len >= n) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

static void tb_zstr(tbuf *b, const zend_string *z, size_t max)
{
	if (!z) {
		return;
	}
	size_t n = ZSTR_LEN(z);
	tb_put(b, ZSTR_VAL(z), n < max ? n : max);
}

static void tb_uint(tbuf *b, unsigned long v)
{
	char d[24];
	size_t n = 0;
	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(d));
	while (n > 0 && b->len < b->cap) {
		b->p[b->len++] = d[--n];
	}
}

/* The line `ex` is at, when it runs user code and its opline points into its code. */
static uint32_t trace_lineno(const zend_execute_data *ex)
{
	const zend_function *f = ex->func;
	const zend_op *op = ex->opline;
	if (!f || !ZEND_USER_CODE(f->type) || !op || !f->op_array.opcodes) {
		return 0;
	}
	if (op < f->op_array.opcodes || op >= f->op_array.opcodes + f->op_array.last) {
		return 0;
	}
	return op->lineno;
}

/* The nearest user-code frame below `ex`: where `ex` was called from (php-fpm's rule). */
static const zend_execute_data *trace_caller(const zend_execute_data *ex)
{
	for (int hops = 0; ex && hops < 4096; hops++) {
		ex = ex->prev_execute_data;
		if (ex && ex->func && ZEND_USER_CODE(ex->func->type)) {
			return ex;
		}
	}
	return NULL;
}

/* `name()` of a frame: Class->method, Class::method, function, or how code was included. */
static void trace_name(tbuf *b, const zend_execute_data *ex, const zend_execute_data *caller)
{
	const zend_function *f = ex->func;
	if (!f) {
		tb_lit(b, "???");
		return;
	}
	if (f->common.function_name) {
		if (f->common.scope && f->common.scope->name) {
			tb_zstr(b, f->common.scope->name, TRACE_NAME_MAX);
			tb_lit(b, Z_TYPE(ex->This) == IS_OBJECT ? "->" : "::");
		}
		tb_zstr(b, f->common.function_name, TRACE_NAME_MAX);
		return;
	}
	/* Code without a function: an included file or eval'd code, named by the statement that
	 * ran it, as debug_backtrace() does. */
	static const struct {
		uint32_t kind;
		const char *name;
	} statements[] = {
		{ZEND_EVAL, "eval"},       {ZEND_INCLUDE, "include"}, {ZEND_INCLUDE_ONCE, "include_once"},
		{ZEND_REQUIRE, "require"}, {ZEND_REQUIRE_ONCE, "require_once"},
	};
	const zend_op *op = caller ? caller->opline : NULL;
	if (op && trace_lineno(caller) && op->opcode == ZEND_INCLUDE_OR_EVAL) {
		for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
			if (statements[i].kind == op->extended_value) {
				tb_lit(b, statements[i].name);
				return;
			}
		}
	}
	tb_lit(b, "[INCLUDE_OR_EVAL]");
}

static void trace_frame(tbuf *b, const char *name_prefix, const zend_execute_data *ex,
			const zend_execute_data *at)
{
	tb_lit(b, "F\t");
	if (name_prefix) {
		tb_lit(b, name_prefix);
	} else {
		trace_name(b, ex, at);
	}
	tb_lit(b, "\t");
	if (at && at->func) {
		tb_zstr(b, at->func->op_array.filename, TRACE_FILE_MAX);
	}
	tb_lit(b, "\t");
	tb_uint(b, at ? trace_lineno(at) : 0);
	tb_lit(b, "\n");
}

/* Walks at most `depth` frames into `b`; 1 when frames were left out. */
static int trace_walk(tbuf *b, unsigned long depth)
{
	const zend_execute_data *ex = *(zend_execute_data *const volatile *)&EG(current_execute_data);
	unsigned long frames = 0;
	for (; ex; ex = ex->prev_execute_data) {
		const zend_function *f = ex->func;
		if (f && ZEND_USER_CODE(f->type) && !f->common.function_name &&
		    ZEND_CALL_KIND(ex) == ZEND_CALL_TOP_CODE) {
			/* The script itself: its line is the call site of the frame above. Alone (a
			 * loop at the top level), it is the only frame, with the line it runs. */
			if (frames == 0 && depth > 0) {
				trace_frame(b, "{main}", ex, ex);
			}
			return 0;
		}
		if (f && !ZEND_USER_CODE(f->type) && !f->common.function_name) {
			/* A nameless internal frame (a fiber's bottom): no call of the script's, which
			 * debug_backtrace() leaves out too. */
			continue;
		}
		if (frames == depth || b->cap - b->len < TRACE_LINE_MAX) {
			return 1;
		}
		trace_frame(b, NULL, ex, trace_caller(ex));
		frames++;
	}
	return 0;
}

static void trace_fault(int sig)
{
	if (trace_walking && pthread_equal(pthread_self(), tracer_thread)) {
		trace_walking = 0;
		siglongjmp(trace_jmp, 1);
	}
	/* A fault of the request itself while a walk was under way: the faulting instruction
	 * runs again under the handler that was there before (the default: the worker dies of
	 * it, as without a walk). */
	sigaction(sig, sig == SIGBUS ? &saved_bus : &saved_segv, NULL);
}

static size_t trace_reply(char *out, size_t cap, unsigned long depth)
{
	static tbuf b;
	struct sigaction sa;
	b.p = out;
	b.len = 0;
	b.cap = cap - 8; /* room for the "M\n" and "E\n" markers */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = trace_fault;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &saved_segv);
	sigaction(SIGBUS, &sa, &saved_bus);
	int more;
	if (sigsetjmp(trace_jmp, 1) == 0) {
		trace_walking = 1;
		more = trace_walk(&b, depth);
		trace_walking = 0;
	} else {
		more = 1;
	}
	sigaction(SIGSEGV, &saved_segv, NULL);
	sigaction(SIGBUS, &saved_bus, NULL);
	b.cap = cap;
	if (more) {
		tb_lit(&b, "M\n");
	}
	tb_lit(&b, "E\n");
	return b.len;
}

static void *tracer_main(void *arg)
{
	static char reply_buf[TRACE_REPLY_MAX];
	char req[32];
	(void)arg;
	for (;;) {
		ssize_t r = recv(trace_fd, req, sizeof(req) - 1, 0);
		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			return NULL;
		}
		if (req[0] != 'T') {
			continue;
		}
		req[r] = 0;
		unsigned long depth = strtoul(req + 1, NULL, 10);
		size_t n = trace_reply(reply_buf, sizeof(reply_buf), depth);
		while (send(trace_fd, reply_buf, n, MSG_NOSIGNAL) < 0 && errno == EINTR) {
		}
	}
}

/* Starts the tracer on `fd`; without it (a ZTS build, no thread) the socket is closed and
 * Isola's requests for a trace end at once. */
static void start_tracer(int fd)
{
#ifdef ZTS
	/* EG() of another thread is not the request's: no tracer. */
	close(fd);
#else
	sigset_t all, old;
	pthread_attr_t attr;
	trace_fd = fd;
	/* Every signal stays with the main thread (SIGTERM, pcntl handlers, alarms); only the
	 * faults the walk itself may raise reach the tracer. */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	if (pthread_create(&tracer_thread, &attr, tracer_main, NULL) != 0) {
		close(fd);
		trace_fd = -1;
	}
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
#endif
}

/* ---- zygote ---- */

static int thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	struct dirent *e;
	if (!d) {
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.') {
			n++;
		}
	}
	closedir(d);
	return n;
}

static void reply(int ctl, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0) {
		return;
	}
	if ((size_t)n >= sizeof(msg)) {
		n = sizeof(msg) - 1;
	}
	while (send(ctl, msg, (size_t)n, MSG_NOSIGNAL) < 0 && errno == EINTR) {
	}
}

static int opcache_enabled(void)
{
	if (!zend_get_extension("Zend OPcache")) {
		return 0;
	}
	return INI_BOOL("opcache.enable") ? 1 : 0;
}

/*
 * Forks one worker. clone(CLONE_PARENT) makes it a child of Isola, not of the zygote, so
 * Isola alone waits for it, signals it and learns how it died, as with php-cgi workers.
 * The zygote is single-threaded (checked before every fork), so no lock can be held by a
 * thread that does not exist in the child.
 */
static void spawn_worker(int ctl, int conn_fd, int err_fd, int trace, const unsigned char *boot,
			 size_t boot_len)
{
	int threads = thread_count();
	if (threads != 1) {
		reply(ctl, "E %d the engine host has %d threads (an extension started threads at module "
			   "start-up); forking it is unsafe: use backend = \"php-cgi\"",
		      EDEADLK, threads);
		return;
	}
	pid_t isola = getppid();
	long pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), NULL, NULL, NULL, 0UL);
	if (pid < 0) {
		reply(ctl, "E %d clone: %s", errno, strerror(errno));
		return;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		prctl(PR_SET_NAME, "isola-php");
		if (getppid() != isola) {
			_exit(1);
		}
		close(ctl);
		if (err_fd != 2) {
			dup2(err_fd, 2);
			close(err_fd);
		}
		/* PHP must never read the control socket or Isola's stdin through php://stdin. */
		int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null_fd >= 0) {
			dup2(null_fd, 0);
			if (null_fd != 0) {
				close(null_fd);
			}
		}
		start_tracer(trace);
		if (boot) {
			worker_script_main(conn_fd, boot, boot_len);
		}
		worker_main(conn_fd);
		_exit(0);
	}
	reply(ctl, "P %ld", pid);
}

int isola_zygote_main(int ctl, const char *ini_entries, const char *ini_path)
{
	/* Start from the dispositions php-cgi starts with: the process that loaded us (Rust's
	 * runtime) catches SIGSEGV and SIGBUS for its stack-overflow report, and its handler
	 * swallows a first signal that is not a fault, so a crashing worker would live on. */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP) {
			signal(sig, SIG_DFL);
		}
	}
	signal(SIGPIPE, SIG_IGN);
	zend_signal_startup();
	/* sapi_startup() clears ini_entries: set them after, as php-cgi and embed do. */
	sapi_startup(&isola_sapi);
	if (ini_entries && *ini_entries) {
		isola_sapi.ini_entries = strdup(ini_entries);
	}
	if (ini_path && *ini_path) {
		isola_sapi.php_ini_path_override = strdup(ini_path);
	}
	if (isola_sapi.startup(&isola_sapi) == FAILURE) {
		reply(ctl, "E PHP module start-up failed (see the lines above)");
		fflush(stderr);
		_exit(1);
	}
	if (getenv("ISOLA_UNSET_INI_SCAN_DIR")) {
		unsetenv("PHP_INI_SCAN_DIR");
		unsetenv("ISOLA_UNSET_INI_SCAN_DIR");
	}
	pthread_atfork(NULL, NULL, mark_forked_child);
	/* ps -o comm / top tell the engine host and its workers apart (they share argv). */
	prctl(PR_SET_NAME, "isola-zygote");
	reply(ctl, "R %s opcache=%d threads=%d ini=%s", PHP_VERSION, opcache_enabled(), thread_count(),
	      php_ini_opened_path ? php_ini_opened_path : "");
	/* A command: "S" (a classic worker) or "W" and a worker script's boot params. */
	static unsigned char buf[65536];
	for (;;) {
		char cbuf[CMSG_SPACE(3 * sizeof(int))];
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr mh = {0};
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		ssize_t n = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			_exit(0);
		}
		int fds[3] = {-1, -1, -1};
		int nfds = 0;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				int *p = (int *)CMSG_DATA(cm);
				for (size_t i = 0; i < k; i++) {
					if (nfds < 3) {
						fds[nfds++] = p[i];
					} else {
						close(p[i]);
					}
				}
			}
		}
		if ((buf[0] == 'S' || buf[0] == 'W') && nfds == 3) {
			/* The fds arrived close-on-exec; the worker keeps them across no exec. */
			spawn_worker(ctl, fds[0], fds[1], fds[2], buf[0] == 'W' ? buf + 1 : NULL,
				     (size_t)n - 1);
		} else {
			reply(ctl, "E %d unknown command", EINVAL);
		}
		for (int i = 0; i < nfds; i++) {
			close(fds[i]);
		}
	}
}
