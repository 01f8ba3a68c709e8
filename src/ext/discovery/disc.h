/*
 * disc.h - the feature discovery module's pieces (docs/protocol.md 5.6).
 */
#ifndef STP_EXT_DISCOVERY_DISC_H
#define STP_EXT_DISCOVERY_DISC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;

/* Writes the features document for session s into buf (cap at least
 * FEAT_HDR_LEN): what its listener offers to its client, and, with
 * user_known, to its user (CMD X'F3' after authentication; before it, rules
 * naming users may match). Returns the document's length. */
size_t disc_doc_build(const struct session *s, bool user_known, uint8_t *buf, size_t cap);

#endif
