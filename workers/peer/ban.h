/*
 * ban.h — violations per host and the bans they lead to.
 *
 * A session that breaks a limit counts one violation against its remote
 * IP. BAN_VIOLATIONS within BAN_WINDOW_MS ban the IP for BAN_MS: inbound
 * connections from it are refused and known peers at it are not dialled.
 * The table is fixed-size; when it is full the entry seen longest ago is
 * reused. Plain data, owned by ban.c.
 */
#ifndef HP_PEER_BAN_H
#define HP_PEER_BAN_H

#include <stdbool.h>
#include <stdint.h>

#include <msgpack.h>

#define BAN_VIOLATIONS	5
#define BAN_WINDOW_MS	(10 * 60 * 1000)
#define BAN_MS		(10 * 60 * 1000)
#define BAN_HOSTS	256

/* Count a violation; true when it bans the host now. */
bool ban_violation(const char *ip, uint64_t now);
bool ban_active(const char *ip, uint64_t now);
void ban_show(msgpack_packer *pk, uint64_t now);

#endif
