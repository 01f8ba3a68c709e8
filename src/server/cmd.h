/*
 * cmd.h - the core command handlers (see ext.h for how they are found).
 */
#ifndef STP_SERVER_CMD_H
#define STP_SERVER_CMD_H

struct session;

void cmd_connect_start(struct session *s);
void cmd_bind_start(struct session *s);
void cmd_udp_start(struct session *s);

#endif
