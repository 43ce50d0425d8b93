/*
 * NAME
 *	hd_im - the IM channel driver: group webhooks over libcurl multi
 * DESCRIPTION
 *	A delivery's recipient is a registered work-group name; the JOB
 *	carries the group's registered endpoint (herald.im_groups.endpoint),
 *	the name of an entry of this driver's configuration, which holds
 *	the provider webhook (a JOB without one is looked up by the group's
 *	own name). Several groups may share one entry:
 *
 *	  im = {
 *	    timeout_ms = 10000; connect_timeout_ms = 3000; max_in_flight = 64;
 *	    max_host_connections = 32; max_connections = 64;
 *	    groups = (
 *	      { name = "ops-oncall"; provider = "slack"; url = "https://hooks.slack.com/services/..."; },
 *	      { name = "sre-cn"; provider = "dingtalk"; url = "https://oapi.dingtalk.com/robot/send?access_token=...";
 *	        secret_file = "/etc/herald/dingtalk.secret"; }
 *	    );
 *	  };
 *
 *	Providers: slack, mattermost (incoming webhooks, {"text"}), teams
 *	(Workflows webhook, an Adaptive Card message), wecom (群机器人),
 *	dingtalk (robot, optional HMAC signature in the URL), feishu (bot,
 *	optional signature in the body) and generic (a JSON document).
 *	Every answer maps to one outcome: provider error codes are read from
 *	the body even on HTTP 200; 429 and provider rate-limit codes retry
 *	after the stated time; 408, 5xx and transport errors retry; other
 *	4xx and non-zero provider codes fail. Confidential messages go only
 *	to https endpoints (else failed, "tls-required"); an entry that is
 *	not configured fails ("unknown-group"). Secrets never reach logs or results and
 *	webhook URLs (which embed tokens) are logged redacted.
 *
 *	max_in_flight jobs are held at once (the driver's capacity: the
 *	worker announces no more credit); at most max_host_connections of
 *	them are in transfer to one host:port, the others wait in hd_http's
 *	queue with their timeout not yet running; max_connections are kept
 *	alive across all hosts (see hd_http.h for the defaults).
 */
#ifndef HD_IM_H
#define HD_IM_H

#include <stddef.h>
#include <stdint.h>

#include "hd_channel.h"
#include "hd_wire.h"

extern const hd_channel_ops_t hd_im_ops;

typedef enum {
	HD_IM_SLACK,
	HD_IM_MATTERMOST,
	HD_IM_TEAMS,
	HD_IM_WECOM,
	HD_IM_DINGTALK,
	HD_IM_FEISHU,
	HD_IM_GENERIC
} hd_im_provider_t;

/* "slack", ...; static storage. */
const char *hd_im_provider_name(hd_im_provider_t provider);

/* 0, or HD_E_INVALID for an unknown name. */
int hd_im_provider_parse(const char *name, hd_im_provider_t *out);

/*
 * Map one HTTP answer (status, body, parsed Retry-After or -1) to
 * out's outcome, retry_after_ms, provider_code, detail and provider_id.
 * out's other fields are left as they are.
 */
void hd_im_map_response(hd_im_provider_t provider, long status, const char *body, size_t body_len,
			int64_t retry_after_ms, hd_wire_result_t *out);

/*
 * DingTalk signature: base64(HMAC-SHA256(key = secret, msg = "<ms>\n" secret)),
 * not yet URL-encoded. out needs 45 bytes. 0 or HD_E_INVALID.
 */
int hd_im_dingtalk_sign(const char *secret, int64_t timestamp_ms, char *out, size_t outlen);

/*
 * Feishu signature: base64(HMAC-SHA256(key = "<s>\n" secret, msg = "")).
 * out needs 45 bytes. 0 or HD_E_INVALID.
 */
int hd_im_feishu_sign(const char *secret, int64_t timestamp_s, char *out, size_t outlen);

/*
 * The request body for provider (JSON), for group and job. secret may be
 * NULL (feishu then sends no signature); now_ms is wall-clock Unix ms.
 * Caller owns the result (free()); NULL when a text is not valid UTF-8.
 */
char *hd_im_build_body(hd_im_provider_t provider, const char *group, const hd_wire_job_t *job,
		       const char *secret, int64_t now_ms);

/*
 * The URL to POST to: url itself, or for a dingtalk group with a
 * secret url + "&timestamp=<ms>&sign=<urlencoded signature>". Caller owns it.
 */
char *hd_im_build_url(hd_im_provider_t provider, const char *url, const char *secret, int64_t now_ms);

#endif
