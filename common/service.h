/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Living under a service manager: readiness notification for Type=notify
 * units (sd_notify(), when built with libsystemd; a no-op otherwise or
 * outside systemd) and the unit's credentials ($CREDENTIALS_DIRECTORY,
 * LoadCredential=).  The broker and the agent use it; nothing else links
 * libsystemd.
 */
#pragma once

#include <stddef.h>

void service_notify(const char *state);
int service_credential(const char *id, char *buf, size_t len);
