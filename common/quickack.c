/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TCP_QUICKACK on demand (see quickack.h).  The option is not sticky: the
 * kernel goes back to delayed ACKs on its own once the connection looks
 * interactive again, so it is set again after each read that needs it.
 */
#include "config.h"

#include "quickack.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

/*
 * Ask the kernel to acknowledge what it has received on socket @fd at
 * once, rather than after the delayed-ACK timer.  Setting TCP_QUICKACK
 * sends an ACK that is pending.  Harmless on a socket that is not TCP
 * (the call fails and is ignored); a no-op where TCP_QUICKACK does not
 * exist.  Does not log.
 */
void
quickack_rearm(int fd)
{
#ifdef TCP_QUICKACK
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
#else
	(void)fd;
#endif
}
