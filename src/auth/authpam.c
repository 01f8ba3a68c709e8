/*
 * authpam.c - RFC 1929 credentials checked by PAM. Blocking: runs on the
 * auth pool's threads. No globals: the password reaches the conversation
 * function through appdata_ptr.
 */
#include "auth/auth.h"

#include <stdlib.h>
#include <string.h>

#include <security/pam_appl.h>

/* Answers every prompt with the password (PAM frees each response and the
 * array); informational messages get no response. */
static int
authpam_conv(int n, const struct pam_message **msg, struct pam_response **resp,
	     void *appdata)
{
	const char *pass = appdata;

	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	struct pam_response *r = calloc((size_t)n, sizeof(*r));
	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		int style = msg[i]->msg_style;
		if (style != PAM_PROMPT_ECHO_OFF && style != PAM_PROMPT_ECHO_ON)
			continue;
		if ((r[i].resp = strdup(pass)) == NULL)
			goto fail;
	}
	*resp = r;
	return PAM_SUCCESS;
fail:
	for (int i = 0; i < n; i++) {
		if (r[i].resp != NULL) {
			explicit_bzero(r[i].resp, strlen(r[i].resp));
			free(r[i].resp);
		}
	}
	free(r);
	return PAM_BUF_ERR;
}

bool
authpam_check(const char *service, const char *user, const char *pass)
{
	struct pam_conv conv = { .conv = authpam_conv, .appdata_ptr = (void *)pass };
	pam_handle_t *pamh = NULL;

	if (*user == '\0' || *pass == '\0')
		return false;
	int rc = pam_start(service, user, &conv, &pamh);
	if (rc != PAM_SUCCESS)
		return false;
	rc = pam_authenticate(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	if (rc == PAM_SUCCESS)
		rc = pam_acct_mgmt(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	pam_end(pamh, rc);
	return rc == PAM_SUCCESS;
}
