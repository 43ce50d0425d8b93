/*
 * NAME
 *	hd_channel - what all channel drivers share
 * DESCRIPTION
 *	Job lifetime helpers; the ops table itself is in hd_channel.h.
 */
#include "hd_channel.h"

#include <stdlib.h>

#include "hd_wire.h"

void hd_channel_job_destroy(hd_channel_job_t **job_p)
{
	if (!job_p || !*job_p)
		return;
	hd_wire_frame_t frame = {.type = HD_WIRE_JOB};
	frame.u.job = (*job_p)->job;
	hd_wire_frame_clear(&frame);
	free(*job_p);
	*job_p = NULL;
}
