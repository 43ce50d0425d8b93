/*
 * NAME
 *	herald_msg_priv - what the client half of libherald sees of a message
 * DESCRIPTION
 *	Private to libherald (hidden symbols, not installed): the wire form
 *	of a herald_msg_t and the idempotency key generated at first submit.
 */
#ifndef HERALD_MSG_PRIV_H
#define HERALD_MSG_PRIV_H

#include "hd_msg.h"
#include "herald/herald.h"

/* The wire form, owned by self (NULL when self is NULL). */
hd_msg_t *herald_msg_wire(herald_msg_t *self);

/*
 * Give self a random 32-hex-character idempotency key unless it already
 * has one; afterwards every submission of self carries the same key.
 */
void herald_msg_ensure_key(herald_msg_t *self);

#endif
