/*
 * tp_nft.h - the kernel engine's parts (tp_nft.c, tp_nft_rules.c,
 * tp_nft_ct.c): TRANSPARENT relays as nftables state in a table the
 * process owns, conntrack entries removed on teardown. The layout of the
 * table is in docs/architecture.md ("The kernel engine's table").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ext/transparent/tp_engine.h"

#define TP_NFT_TABLE    "stpd_tp" /* stpd's table (inet family) */
/* ct mark bits the TCP rules set (tp_nft_rules.c); the rest is the id */
#define TP_NFT_FIN_BIT  0x80000000u /* the target sent FIN */
#define TP_NFT_CFIN_BIT 0x40000000u /* the client sent FIN */
#define TP_NFT_RST_BIT  0x20000000u /* a RST, either way */
#define TP_NFT_ID_MASK  0x1fffffffu

struct nft_ctx;
struct nfct_handle;

/* One relay as the rule writer sees it: all addresses unmapped, same
 * family for src, bnd and dst, bnd with its port. */
struct tp_nft_flow {
	uint32_t id; /* ct mark, 1..TP_NFT_ID_MASK */
	uint8_t ptcl;
	bool watch_fin; /* TCP with end-on-fin */
	struct sockaddr_storage src, dst, bnd;
};

/* ---- tp_nft_rules.c: the table through libnftables ---- */
/* A context with buffered output and errors; NULL on failure. */
struct nft_ctx *tp_nft_ctx_new(void);
/* Replaces table with an empty one holding the base chains, maps and sets:
 * every pinhole of an earlier run is gone when it returns. 0 or -1 (err). */
int tp_nft_table_reset(struct nft_ctx *nft, const char *table, char *err, size_t errlen);
/* Adds the flow's chains, counters and map elements in one transaction. */
int tp_nft_flow_add(struct nft_ctx *nft, const char *table, const struct tp_nft_flow *f, char *err,
		    size_t errlen);
/* Removes everything but the counters (one transaction): no packet of the
 * flow is forwarded once it returns. */
int tp_nft_flow_unhook(struct nft_ctx *nft, const char *table, const struct tp_nft_flow *f,
		       char *err, size_t errlen);
int tp_nft_counters_read(struct nft_ctx *nft, const char *table, uint32_t id,
			 struct tp_counters *out);
int tp_nft_counters_del(struct nft_ctx *nft, const char *table, uint32_t id);
/* The ids in the `marks` set of an existing table (a previous run's
 * relays), at most max; 0 when the table does not exist. */
size_t tp_nft_marks_list(struct nft_ctx *nft, const char *table, uint32_t *ids, size_t max);

/* ---- tp_nft_ct.c: conntrack ---- */
/* Deletes the flow's conntrack entry (original tuple src -> bnd); 0 also
 * when there was none. */
int tp_nft_ct_forget(struct nfct_handle *q, const struct tp_nft_flow *f);
/* Deletes every entry whose mark's id bits are id (a crashed run's flow);
 * returns how many. */
int tp_nft_ct_forget_mark(struct nfct_handle *q, uint32_t id);
/* The mark of the flow's entry in *mark; -1 when there is none. */
int tp_nft_ct_mark(struct nfct_handle *q, const struct tp_nft_flow *f, uint32_t *mark);

/* The kernel engine on its own table: stp-relayd uses "stp_relayd" so it
 * can share a host with an stpd running the kernel engine in-process. */
struct tp_engine *tp_nft_create_table(struct ev_loop *loop, const struct tp_conf *conf,
				      const char *table, char *err, size_t errlen);

extern const struct tp_engine_ops tp_engine_kernel;
