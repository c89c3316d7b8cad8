/*
 * Baton's C shim over DPDK 22.11.
 *
 * DPDK's fast-path API (rte_eth_rx_burst, rte_eth_tx_burst, the
 * rte_pktmbuf_* helpers) is made of `static inline` functions and macros
 * that bindgen cannot turn into callable symbols, and rte_errno is a
 * per-lcore (thread-local) variable behind a macro. This file gives each
 * of them a real, exported function; build.rs compiles shim.c with the cc
 * crate and generates Rust bindings from this header (allowlisted to what
 * dataplane/src/port/dpdk calls).
 *
 * Every function here is a thin wrapper: no policy, no allocation of its
 * own, so the Rust side stays the one place to read.
 */
#ifndef BATON_DPDK_SHIM_H
#define BATON_DPDK_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* rte_errno of the calling thread. */
int baton_rte_errno(void);

/* rte_lcore_id of the calling thread (UINT32_MAX, LCORE_ID_ANY, if none). */
unsigned int baton_lcore_id(void);

/*
 * rte_eal_init with the EAL's log captured: everything the EAL logs during
 * init is also copied (tail first kept) into `log`, NUL-terminated, so a
 * failure can be reported with the EAL's own reason. The log still goes to
 * stderr as usual. Returns rte_eal_init's result; on failure `*err` holds
 * rte_errno.
 */
int baton_eal_init(int argc, char **argv, char *log, size_t log_len, int *err);

/* rte_vdev_init with the driver's log captured the same way. */
int baton_vdev_init(const char *name, const char *args, char *log, size_t log_len);

/* rte_eth_rx_burst. */
uint16_t baton_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* rte_eth_tx_burst. */
uint16_t baton_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* rte_pktmbuf_alloc_bulk: 0 on success (all `n` allocated), negative if none were. */
int baton_pktmbuf_alloc_bulk(struct rte_mempool *pool, struct rte_mbuf **mbufs, unsigned int n);

/* rte_pktmbuf_free (the whole chain; NULL is allowed). */
void baton_pktmbuf_free(struct rte_mbuf *m);

/*
 * The first segment's data (rte_pktmbuf_mtod), with its length, the whole
 * packet's length (they differ for a chained mbuf), and whether the L4
 * checksum need not be checked: the device verified it
 * (RTE_MBUF_F_RX_L4_CKSUM_GOOD) or the sender left it to offload and the
 * data's integrity is known (RTE_MBUF_F_RX_L4_CKSUM_NONE).
 */
const uint8_t *baton_pktmbuf_view(const struct rte_mbuf *m, uint16_t *data_len, uint32_t *pkt_len,
				  int *l4_csum_trusted);

/* rte_pktmbuf_append: room for `len` more bytes at the end, or NULL. */
uint8_t *baton_pktmbuf_append(struct rte_mbuf *m, uint16_t len);

#endif
