/*
 * err.h — hpd's error codes.
 *
 * Functions return 0 on success or a negative HP_E* code. hp_strerror()
 * gives a short human description; callers add the context (file, field,
 * peer) when they report it.
 */
#ifndef HP_ERR_H
#define HP_ERR_H

enum hp_err {
	HP_OK = 0,
	HP_ENOMEM = -1,		/* allocation failed */
	HP_ETRUNC = -2,		/* input ends before the data it announces */
	HP_ETOOBIG = -3,	/* a length or count exceeds its limit */
	HP_EFORMAT = -4,	/* malformed encoding */
	HP_ETYPE = -5,		/* message type unknown or not allowed here */
	HP_EIO = -6,		/* system call failed; errno tells more */
	HP_EEOF = -7,		/* the other end closed */
	HP_EAGAIN = -8,		/* nothing to do yet; try again later */
	HP_EINVAL = -9,		/* invalid argument or value */
	HP_ECRYPTO = -10,	/* key or signature check failed */
	HP_EEXIST = -11,	/* already exists */
	HP_ENOENT = -12,	/* does not exist */
	HP_EPROTO = -13,	/* peer broke the protocol (version, sequence) */
	HP_EBUSY = -14,		/* resource held by someone else */
};

const char *hp_strerror(int err);

#endif
