/*
 * NAME
 *	curl-anchor - the IM benchmark's anchor: a plain libcurl POST loop
 * SYNOPSIS
 *	curl-anchor --url URL [--bytes N] [--count N] [--seconds S]
 * DESCRIPTION
 *	The simplest webhook client that is still a real one: one libcurl
 *	easy handle, reused for every request (so one keep-alive connection),
 *	POSTing the same JSON document of about --bytes bytes
 *	(Content-Type: application/json) one request after the other, until
 *	--count requests were made or --seconds passed, whichever first. A
 *	request counts as ok when the transfer succeeded with a 2xx status.
 *	Prints one line:
 *
 *	  anchor requests=N ok=K errors=E elapsed_s=T req_per_s=R bytes=B client_cpu_pct=P
 *
 *	It is what bench/run.sh im compares Herald's webhook deliveries with:
 *	no queue, no durability, no outcome recorded anywhere.
 * LIMITS
 *	bytes <= 1 MiB, count <= 100 million, seconds <= 3600.
 * EXIT STATUS
 *	0 every request was ok, 1 some failed, 2 usage or setup error.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>

#define CA_MAX_BYTES   (1024L * 1024L)
#define CA_MAX_COUNT   100000000L
#define CA_MAX_SECONDS 3600L
#define CA_NS_PER_S    1000000000LL

static int64_t ca_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * CA_NS_PER_S + ts.tv_nsec;
}

static double ca_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* The answer body is not needed: drop it without a copy. */
static size_t ca_discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * nmemb;
}

/* A JSON document shaped like the generic provider's, about `bytes` long; caller frees. */
static char *ca_make_body(size_t bytes)
{
	static const char head[] = "{\"group\":\"bench-anchor\",\"subject\":\"herald-bench message\","
				   "\"delivery_id\":1,\"message_id\":1,\"body\":\"";
	static const char tail[] = "\"}";
	static const char text[] = "Your weekly report is ready. The build finished without "
				   "problems and the nightly jobs ran on time. ";
	size_t fixed = sizeof(head) - 1 + sizeof(tail) - 1;
	size_t n = bytes > fixed ? bytes - fixed : 1;
	char *body = malloc(fixed + n + 1);
	if (!body)
		return NULL;
	memcpy(body, head, sizeof(head) - 1);
	for (size_t i = 0; i < n; i++)
		body[sizeof(head) - 1 + i] = text[i % (sizeof(text) - 1)];
	memcpy(body + sizeof(head) - 1 + n, tail, sizeof(tail));
	return body;
}

static bool ca_parse_long(const char *s, long lo, long hi, long *out)
{
	char *end = NULL;
	long v = strtol(s, &end, 10);
	if (!end || *end != '\0' || end == s || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static void ca_usage(FILE *out)
{
	fputs("usage: curl-anchor --url URL [--bytes N] [--count N] [--seconds S]\n"
	      "  --bytes N     JSON body size (default 600)\n"
	      "  --count N     stop after N requests (default 100000)\n"
	      "  --seconds S   stop after S seconds (default 10)\n", out);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"url", required_argument, NULL, 'u'},
		{"bytes", required_argument, NULL, 'b'},
		{"count", required_argument, NULL, 'n'},
		{"seconds", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *url = NULL;
	long bytes = 600, count = 100000, seconds = 10, v;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'u': url = optarg; break;
		case 'b':
			if (!ca_parse_long(optarg, 1, CA_MAX_BYTES, &v))
				goto bad;
			bytes = v;
			break;
		case 'n':
			if (!ca_parse_long(optarg, 1, CA_MAX_COUNT, &v))
				goto bad;
			count = v;
			break;
		case 's':
			if (!ca_parse_long(optarg, 1, CA_MAX_SECONDS, &v))
				goto bad;
			seconds = v;
			break;
		case 'h': ca_usage(stdout); return 0;
		default: ca_usage(stderr); return 2;
		}
	}
	if (!url || optind != argc) {
		ca_usage(stderr);
		return 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "curl-anchor: curl_global_init failed\n");
		return 2;
	}
	char *body = ca_make_body((size_t)bytes);
	CURL *h = curl_easy_init();
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!body || !h || !headers) {
		fprintf(stderr, "curl-anchor: out of memory\n");
		return 2;
	}
	size_t body_len = strlen(body);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, ca_discard);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);

	long ok = 0, errors = 0, done = 0;
	double cpu0 = ca_cpu_s();
	int64_t start = ca_now_ns();
	int64_t deadline = start + (int64_t)seconds * CA_NS_PER_S;
	char first_error[256] = "";
	while (done < count && ca_now_ns() < deadline) {
		CURLcode rc = curl_easy_perform(h);
		long status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		done++;
		if (rc == CURLE_OK && status >= 200 && status < 300) {
			ok++;
		} else {
			errors++;
			if (!first_error[0])
				snprintf(first_error, sizeof(first_error), "curl=%s http=%ld",
					 curl_easy_strerror(rc), status);
		}
	}
	double elapsed_s = (double)(ca_now_ns() - start) / (double)CA_NS_PER_S;
	double cpu_s = ca_cpu_s() - cpu0;
	printf("anchor requests=%ld ok=%ld errors=%ld elapsed_s=%.3f req_per_s=%.0f bytes=%zu "
	       "client_cpu_pct=%.0f\n", done, ok, errors, elapsed_s,
	       elapsed_s > 0 ? (double)ok / elapsed_s : 0.0, body_len,
	       elapsed_s > 0 ? 100.0 * cpu_s / elapsed_s : 0.0);
	if (first_error[0])
		fprintf(stderr, "curl-anchor: first error: %s\n", first_error);
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	free(body);
	curl_global_cleanup();
	return errors == 0 ? 0 : 1;
bad:
	fprintf(stderr, "curl-anchor: bad value '%s' for an option\n", optarg);
	ca_usage(stderr);
	return 2;
}
