/*
 * hpd-consensus — the consensus worker. Until its subsystem lands it runs the common
 * worker life: HELLO, READY, heartbeats, sibling channels, status.
 */
#include "worker.h"

int
main(int argc, char **argv)
{
	hp_worker_main(argc, argv, "consensus");
}
