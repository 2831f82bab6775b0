/* SPDX-License-Identifier: Apache-2.0 */
/* Run-time CPU feature and topology detection (see cpu.h). */
#include "core/cpu.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static struct exo_cpu_features features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
static unsigned long long read_xcr0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect_x86(struct exo_cpu_features *f)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return;
    f->sse3 = c & bit_SSE3;
    f->ssse3 = c & bit_SSSE3;
    f->fma = c & bit_FMA;
    f->f16c = c & bit_F16C;
    bool osxsave = c & bit_OSXSAVE;
    bool avx_cpu = c & bit_AVX;
    /* The OS must save the wider registers on context switch, or using them corrupts state. */
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    bool os_avx = (xcr0 & 0x6) == 0x6;
    bool os_avx512 = (xcr0 & 0xe6) == 0xe6;
    f->avx = avx_cpu && os_avx;
    if (!f->avx)
        f->fma = f->f16c = false;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f->avx2 = f->avx && (b & bit_AVX2);
        f->avx512f = os_avx512 && (b & bit_AVX512F);
        f->avx512bw = f->avx512f && (b & bit_AVX512BW);
        f->avx512vl = f->avx512f && (b & bit_AVX512VL);
        f->avx512vnni = f->avx512f && (c & bit_AVX512VNNI);
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        f->avxvnni = f->avx2 && (a & (1u << 4));
        f->avx512bf16 = f->avx512f && (a & (1u << 5));
    }
}
#endif

static void detect(void)
{
#if defined(__x86_64__) || defined(__i386__)
    detect_x86(&features);
#elif defined(__aarch64__)
    features.neon = true;
#if defined(__ARM_FEATURE_DOTPROD)
    features.neon_dotprod = true;
#endif
#endif
    const char *cap = getenv("EXO_CPU_ISA");
    if (cap && strcmp(cap, "scalar") == 0) {
        memset(&features, 0, sizeof(features));
    } else if (cap && strcmp(cap, "avx2") == 0) {
        features.avx512f = features.avx512bw = features.avx512vl = false;
        features.avx512vnni = features.avx512bf16 = false;
    }
}

const struct exo_cpu_features *exo_cpu_features(void)
{
    pthread_once(&features_once, detect);
    return &features;
}

int exo_cpu_logical_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int read_int_file(const char *path, int *ret)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fscanf(f, "%d", ret) == 1;
    fclose(f);
    return ok ? 0 : -1;
}

int exo_cpu_physical_cores(void)
{
    cpu_set_t set;
    int logical = exo_cpu_logical_cpus();
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return logical;
    /* A core is a (package, core id) pair; count distinct pairs among the CPUs we may use. */
    enum { MAX_SEEN = 1024 };
    long seen[MAX_SEEN];
    int n_seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n_seen < MAX_SEEN; cpu++) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        char path[128];
        int core, pkg;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
        if (read_int_file(path, &core) != 0)
            return logical;
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/physical_package_id",
                 cpu);
        if (read_int_file(path, &pkg) != 0)
            pkg = 0;
        long key = (long)pkg << 20 | (core & 0xfffff);
        int dup = 0;
        for (int i = 0; i < n_seen && !dup; i++)
            dup = seen[i] == key;
        if (!dup)
            seen[n_seen++] = key;
    }
    return n_seen > 0 ? n_seen : logical;
}
