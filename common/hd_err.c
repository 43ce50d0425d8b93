/*
 * NAME
 *	hd_err - the one error space of Herald
 * DESCRIPTION
 *	Lookup functions generated from the HD_ERRNO_MAP table.
 */
#include "hd_err.h"

#include <string.h>

struct hd_err_row {
	int code;
	const char *name;
	bool retryable;
	const char *text;
};

static const struct hd_err_row hd_err_rows[] = {
#define HD_ERR_ROW_(sym, wire, retry, msg) {HD_E_##sym, wire, retry, msg},
	HD_ERRNO_MAP(HD_ERR_ROW_)
#undef HD_ERR_ROW_
};

static const struct hd_err_row *hd_err_find(int code)
{
	for (size_t i = 0; i < sizeof(hd_err_rows) / sizeof(hd_err_rows[0]); i++)
		if (hd_err_rows[i].code == code)
			return &hd_err_rows[i];
	return NULL;
}

const char *hd_strerror(int code)
{
	if (code == HD_OK)
		return "success";
	const struct hd_err_row *row = hd_err_find(code);
	return row ? row->text : "unknown error";
}

const char *hd_err_name(int code)
{
	if (code == HD_OK)
		return "ok";
	const struct hd_err_row *row = hd_err_find(code);
	return row ? row->name : "internal";
}

int hd_err_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(hd_err_rows) / sizeof(hd_err_rows[0]); i++)
		if (strcmp(hd_err_rows[i].name, name) == 0)
			return hd_err_rows[i].code;
	return HD_E_INTERNAL;
}

bool hd_err_is_retryable(int code)
{
	const struct hd_err_row *row = hd_err_find(code);
	return row && row->retryable;
}
