/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Service-manager glue (see service.h).  Both calls are cheap and never
 * fail the caller: a daemon started by hand, in a test or under another
 * supervisor has no $NOTIFY_SOCKET and no $CREDENTIALS_DIRECTORY.
 */
#include "config.h"

#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"

/*
 * Tell the service manager @state ("READY=1", "RELOADING=1",
 * "STOPPING=1", "STATUS=..."; see sd_notify(3)).  Without libsystemd, or
 * when the process was not started by a Type=notify unit, does nothing.
 * A failure to send is logged at debug level only: the service manager
 * then times the start out by itself, with its own message.
 */
void
service_notify(const char *state)
{
#if HAVE_LIBSYSTEMD
	int r = sd_notify(0, state);

	if (r < 0)
		log_debug("sd_notify(%s): error %d", state, r);
#else
	(void)state;
#endif
}

/*
 * The path of the unit's credential @id (LoadCredential=@id:...) into
 * @buf (capacity @len), if the service manager passed it: 1 if
 * $CREDENTIALS_DIRECTORY/@id exists, 0 if not (no credentials directory,
 * no such credential, or a path that does not fit).  Does not log, and
 * does not open the file: its reader reports what is wrong with it.
 */
int
service_credential(const char *id, char *buf, size_t len)
{
	const char *dir = getenv("CREDENTIALS_DIRECTORY");
	int n;

	if (dir == NULL || dir[0] != '/')
		return 0;
	n = snprintf(buf, len, "%s/%s", dir, id);
	if (n < 0 || (size_t)n >= len)
		return 0;
	return access(buf, F_OK) == 0;
}
