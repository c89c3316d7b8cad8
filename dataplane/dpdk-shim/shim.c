/*
 * Baton's C shim over DPDK 22.11: see shim.h for why it exists.
 */
#define _GNU_SOURCE
#include "shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_log.h>

int baton_rte_errno(void)
{
	return rte_errno;
}

unsigned int baton_lcore_id(void)
{
	return rte_lcore_id();
}

/* Log capture around one EAL call: see baton_eal_init and baton_vdev_init. */
struct capture {
	char *buf;
	size_t len;
	FILE *f;
};

static void capture_begin(struct capture *c)
{
	c->buf = NULL;
	c->len = 0;
	c->f = open_memstream(&c->buf, &c->len);
	if (c->f != NULL)
		rte_openlog_stream(c->f);
}

static void capture_end(struct capture *c, char *log, size_t log_len)
{
	if (c->f != NULL) {
		/* Back to the EAL's default stream (stderr and syslog). */
		rte_openlog_stream(NULL);
		fclose(c->f);
	}
	if (log != NULL && log_len > 0)
		log[0] = '\0';
	if (c->buf == NULL)
		return;
	fwrite(c->buf, 1, c->len, stderr);
	if (log != NULL && log_len > 0) {
		/* The reason of a failure is logged last: keep the tail. */
		size_t keep = c->len < log_len - 1 ? c->len : log_len - 1;

		memcpy(log, c->buf + (c->len - keep), keep);
		log[keep] = '\0';
	}
	free(c->buf);
}

int baton_eal_init(int argc, char **argv, char *log, size_t log_len, int *err)
{
	struct capture c;
	int ret;

	capture_begin(&c);
	ret = rte_eal_init(argc, argv);
	*err = ret < 0 ? rte_errno : 0;
	capture_end(&c, log, log_len);
	return ret;
}

int baton_vdev_init(const char *name, const char *args, char *log, size_t log_len)
{
	struct capture c;
	int ret;

	capture_begin(&c);
	ret = rte_vdev_init(name, args);
	capture_end(&c, log, log_len);
	return ret;
}

uint16_t baton_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t baton_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

int baton_pktmbuf_alloc_bulk(struct rte_mempool *pool, struct rte_mbuf **mbufs, unsigned int n)
{
	return rte_pktmbuf_alloc_bulk(pool, mbufs, n);
}

void baton_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

const uint8_t *baton_pktmbuf_view(const struct rte_mbuf *m, uint16_t *data_len, uint32_t *pkt_len,
				  int *l4_csum_trusted)
{
	uint64_t l4 = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;

	*data_len = rte_pktmbuf_data_len(m);
	*pkt_len = rte_pktmbuf_pkt_len(m);
	*l4_csum_trusted = l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD || l4 == RTE_MBUF_F_RX_L4_CKSUM_NONE;
	return rte_pktmbuf_mtod(m, const uint8_t *);
}

uint8_t *baton_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return (uint8_t *)rte_pktmbuf_append(m, len);
}
