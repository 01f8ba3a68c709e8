/*
 * sessionlog.h - the lines stpd writes about sessions: one per finished
 * session, one per denial, one per failed login. Text (key=value) or JSON
 * lines, as configured. Never passwords.
 */
#ifndef STP_SERVER_SESSIONLOG_H
#define STP_SERVER_SESSIONLOG_H

#include <stdint.h>
#include <sys/socket.h>

struct session;
struct rule;
struct flow;

void sessionlog_session(const struct session *s, const char *result);
void sessionlog_deny(const struct session *s, uint32_t rule_cmd, const struct sockaddr *dst_addr,
		     const char *dst_name, uint16_t dst_port, const struct rule *r,
		     const char *why);
/* One line per flow of a control session (flow.h), when it ends. */
void sessionlog_flow(const struct session *s, const struct flow *f, const char *result);
void sessionlog_auth_failed(const struct session *s, const char *user, const char *why);
const char *rule_cmd_name(uint32_t rule_cmd);

#endif
