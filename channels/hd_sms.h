/*
 * NAME
 *	hd_sms - the SMS channel driver: HTTP gateways over libcurl multi
 * DESCRIPTION
 *	A delivery's recipient is an E.164 number. One gateway per worker:
 *
 *	  sms = {
 *	    provider = "kannel";            # kannel | twilio | generic
 *	    url = "http://127.0.0.1:13013"; # kannel smsbox; twilio "https://api.twilio.com"
 *	    username = "herald";            # kannel sendsms-user; twilio Account SID
 *	    secret_file = "/etc/herald/sms.secret";   # or secret_env = "..."
 *	    from = "+15550001111";
 *	    timeout_ms = 10000; connect_timeout_ms = 3000;
 *	    max_in_flight = 64; max_segments = 10;
 *	    max_host_connections = 32; max_connections = 64;   # see hd_http.h
 *	  };
 *
 *	kannel: GET {url}/cgi-bin/sendsms with username, password, to,
 *	from, text, charset=UTF-8 and coding=0 (GSM-7) or 2 (UCS-2);
 *	"0: Accepted for delivery" / "3: Queued for later delivery" are
 *	delivered. twilio: POST {url}/2010-04-01/Accounts/{sid}/Messages.json
 *	(To, From, Body; basic auth sid:token); 201 with "sid" is delivered.
 *	generic: POST {"to","from","text"} to url. 429, 408, 5xx and
 *	transport errors retry (Retry-After honoured); other 4xx fail with
 *	the gateway's code. The text is the message body (the subject when
 *	there is no body); more than max_segments parts fail ("too-long").
 *	Confidential messages go only over https ("tls-required").
 */
#ifndef HD_SMS_H
#define HD_SMS_H

#include <stddef.h>
#include <stdint.h>

#include "hd_channel.h"
#include "hd_sms_segments.h"
#include "hd_wire.h"

extern const hd_channel_ops_t hd_sms_ops;

typedef enum { HD_SMS_KANNEL, HD_SMS_TWILIO, HD_SMS_GENERIC } hd_sms_provider_t;

/* "kannel", ...; static storage. */
const char *hd_sms_provider_name(hd_sms_provider_t provider);

/* 0, or HD_E_INVALID for an unknown name. */
int hd_sms_provider_parse(const char *name, hd_sms_provider_t *out);

/*
 * Map one HTTP answer to out's outcome, retry_after_ms, provider_code,
 * detail and provider_id (Twilio's sid). Other fields are left alone.
 */
void hd_sms_map_response(hd_sms_provider_t provider, long status, const char *body, size_t body_len,
			 int64_t retry_after_ms, hd_wire_result_t *out);

/*
 * The Kannel sendsms URL for base (smsbox "http://host:port", or a URL
 * already ending in /cgi-bin/sendsms). from may be NULL. Caller owns it;
 * it carries the password: wipe it with hd_http_secret_free.
 */
char *hd_sms_kannel_url(const char *base, const char *username, const char *password,
			const char *from, const char *to, const char *text,
			hd_sms_encoding_t encoding);

/* application/x-www-form-urlencoded To, From, Body for Twilio. Caller owns it. */
char *hd_sms_twilio_form(const char *to, const char *from, const char *text);

#endif
