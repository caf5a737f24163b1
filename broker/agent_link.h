/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The npufarm agent link on the farm port (docs/protocol.md): an agent
 * dials out to the broker, says hello with its name and key, and keeps the
 * link alive with heartbeats; the broker shows it as a board and notices
 * when it goes silent.
 */
#pragma once

struct conn;

int agent_link_start(struct conn *c);
void agent_link_read(struct conn *c);
void agent_link_closed(struct conn *c);
