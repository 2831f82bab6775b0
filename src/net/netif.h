/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Network interfaces and their addresses, read from the kernel (getifaddrs) in one call. mDNS
 * uses it to choose the links it joins and to decide whether a packet's source is on the link it
 * arrived on; anything else that needs "which interfaces and subnets does this host have" may
 * reuse it. A listing is a snapshot: callers re-read it to notice changes.
 */
#ifndef EXO_NET_NETIF_H
#define EXO_NET_NETIF_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define EXO_NETIF_MAX      64 /* interfaces listed; the rest are ignored */
#define EXO_NETIF_MAX_ADDR 16 /* addresses kept per interface */

struct exo_netif_addr {
    int family; /* AF_INET or AF_INET6 */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } addr;
    uint8_t prefix_len;
};

struct exo_netif {
    char name[IF_NAMESIZE];
    unsigned index;
    unsigned flags; /* IFF_* */
    struct exo_netif_addr addrs[EXO_NETIF_MAX_ADDR];
    size_t n_addrs;
};

/* Every interface that is up, with its IPv4 and IPv6 addresses, ordered by index. *ret_list is
 * owned by the caller (exo_free); written only on success. 0, EXO_ENOMEM or EXO_EIO. */
int exo_netif_list(struct exo_netif **ret_list, size_t *ret_n);

/* Up, multicast-capable and not point-to-point: where mDNS can run. */
bool exo_netif_is_multicast(const struct exo_netif *nif);

/* Whether nif has an address of family (AF_INET or AF_INET6); if ret_addr is not NULL it gets
 * the first one (borrowed from nif). */
bool exo_netif_has_family(const struct exo_netif *nif, int family,
                          const struct exo_netif_addr **ret_addr);

/* Whether a packet from src that arrived on nif came from that link: an IPv4 source inside one
 * of nif's IPv4 subnets (or in 169.254/16), an IPv6 source that is link-local or inside one of
 * nif's IPv6 prefixes. src is borrowed. */
bool exo_netif_on_link(const struct exo_netif *nif, const struct sockaddr *src);

/* Whether addr (AF_INET or AF_INET6 sockaddr, borrowed) is one of nif's own addresses. */
bool exo_netif_is_local(const struct exo_netif *nif, const struct sockaddr *addr);

#endif
