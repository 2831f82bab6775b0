/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Interface listing over getifaddrs(3). getifaddrs answers from one netlink dump of the kernel's
 * tables, with no file or network I/O, so it is cheap enough to call from the loop thread every
 * few seconds.
 */
#include "net/netif.h"

#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

static uint8_t mask_bits(const uint8_t *mask, size_t len)
{
    uint8_t bits = 0;
    for (size_t i = 0; i < len; i++)
        bits += (uint8_t)__builtin_popcount(mask[i]);
    return bits;
}

static struct exo_netif *find_or_add(struct exo_netif *list, size_t *n, const char *name,
                                     unsigned flags)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(list[i].name, name) == 0)
            return &list[i];
    if (*n >= EXO_NETIF_MAX || strlen(name) >= IF_NAMESIZE)
        return NULL;
    unsigned index = if_nametoindex(name);
    if (index == 0)
        return NULL;
    struct exo_netif *nif = &list[(*n)++];
    memset(nif, 0, sizeof(*nif));
    strcpy(nif->name, name);
    nif->index = index;
    nif->flags = flags;
    return nif;
}

static void add_addr(struct exo_netif *nif, const struct ifaddrs *ifa)
{
    if (nif->n_addrs >= EXO_NETIF_MAX_ADDR)
        return;
    struct exo_netif_addr *a = &nif->addrs[nif->n_addrs];
    if (ifa->ifa_addr->sa_family == AF_INET) {
        a->family = AF_INET;
        a->addr.v4 = ((const struct sockaddr_in *)(const void *)ifa->ifa_addr)->sin_addr;
        a->prefix_len = 32;
        if (ifa->ifa_netmask) {
            const struct sockaddr_in *m = (const void *)ifa->ifa_netmask;
            a->prefix_len = mask_bits((const uint8_t *)&m->sin_addr, 4);
        }
    } else {
        a->family = AF_INET6;
        a->addr.v6 = ((const struct sockaddr_in6 *)(const void *)ifa->ifa_addr)->sin6_addr;
        a->prefix_len = 128;
        if (ifa->ifa_netmask) {
            const struct sockaddr_in6 *m = (const void *)ifa->ifa_netmask;
            a->prefix_len = mask_bits(m->sin6_addr.s6_addr, 16);
        }
    }
    nif->n_addrs++;
}

static int by_index(const void *a, const void *b)
{
    const struct exo_netif *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

int exo_netif_list(struct exo_netif **ret_list, size_t *ret_n)
{
    struct ifaddrs *ifas = NULL;
    struct exo_netif *list = NULL;
    size_t n = 0;
    int rc = 0;

    if (getifaddrs(&ifas) != 0)
        return EXO_EIO;
    list = exo_calloc(EXO_NETIF_MAX, sizeof(*list));
    if (!list) {
        rc = EXO_ENOMEM;
        goto out;
    }
    for (const struct ifaddrs *ifa = ifas; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_name || !(ifa->ifa_flags & IFF_UP))
            continue;
        struct exo_netif *nif = find_or_add(list, &n, ifa->ifa_name, ifa->ifa_flags);
        if (!nif || !ifa->ifa_addr)
            continue;
        if (ifa->ifa_addr->sa_family == AF_INET || ifa->ifa_addr->sa_family == AF_INET6)
            add_addr(nif, ifa);
    }
    qsort(list, n, sizeof(*list), by_index);
    *ret_list = list;
    *ret_n = n;
    list = NULL;
out:
    exo_free(list);
    freeifaddrs(ifas);
    return rc;
}

bool exo_netif_is_multicast(const struct exo_netif *nif)
{
    return (nif->flags & IFF_UP) && (nif->flags & IFF_MULTICAST) && !(nif->flags & IFF_POINTOPOINT);
}

bool exo_netif_has_family(const struct exo_netif *nif, int family,
                          const struct exo_netif_addr **ret_addr)
{
    for (size_t i = 0; i < nif->n_addrs; i++) {
        if (nif->addrs[i].family == family) {
            if (ret_addr)
                *ret_addr = &nif->addrs[i];
            return true;
        }
    }
    return false;
}

/* Whether the first `bits` bits of a and b agree. */
static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

bool exo_netif_on_link(const struct exo_netif *nif, const struct sockaddr *src)
{
    if (src->sa_family == AF_INET) {
        const uint8_t *s =
            (const uint8_t *)&((const struct sockaddr_in *)(const void *)src)->sin_addr;
        if (s[0] == 169 && s[1] == 254)
            return true;
        for (size_t i = 0; i < nif->n_addrs; i++) {
            const struct exo_netif_addr *a = &nif->addrs[i];
            if (a->family == AF_INET &&
                prefix_eq(s, (const uint8_t *)&a->addr.v4, a->prefix_len > 32 ? 32 : a->prefix_len))
                return true;
        }
        return false;
    }
    if (src->sa_family == AF_INET6) {
        const struct in6_addr *s = &((const struct sockaddr_in6 *)(const void *)src)->sin6_addr;
        if (IN6_IS_ADDR_LINKLOCAL(s))
            return true;
        for (size_t i = 0; i < nif->n_addrs; i++) {
            const struct exo_netif_addr *a = &nif->addrs[i];
            if (a->family == AF_INET6 && prefix_eq(s->s6_addr, a->addr.v6.s6_addr,
                                                   a->prefix_len > 128 ? 128 : a->prefix_len))
                return true;
        }
    }
    return false;
}

bool exo_netif_is_local(const struct exo_netif *nif, const struct sockaddr *addr)
{
    for (size_t i = 0; i < nif->n_addrs; i++) {
        const struct exo_netif_addr *a = &nif->addrs[i];
        if (a->family != addr->sa_family)
            continue;
        if (a->family == AF_INET &&
            memcmp(&a->addr.v4, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4) ==
                0)
            return true;
        if (a->family == AF_INET6 &&
            memcmp(&a->addr.v6, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr,
                   16) == 0)
            return true;
    }
    return false;
}
