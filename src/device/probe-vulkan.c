/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Vulkan probe: every physical device the loader (libvulkan.so.1, opened with dlopen) finds,
 * with its memory heaps (device-local ones are the device's memory; a device whose only heaps
 * are host memory shares RAM), subgroup size, driver, UUID and, where VK_EXT_pci_bus_info is
 * there, its PCI address for matching with the other APIs. A CPU device (Mesa's lavapipe) is
 * the host CPU through Vulkan and folds into cpu0.
 *
 * Only the headers come from the Vulkan SDK (VK_NO_PROTOTYPES: nothing is linked); every entry
 * point is fetched through vkGetInstanceProcAddr.
 */
#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "device/detect-int.h"

#define MAX_PHYSICAL_DEVICES 16
#define MAX_EXTENSIONS       1024

struct vk_api {
    PFN_vkGetInstanceProcAddr get_proc;
    PFN_vkCreateInstance create_instance;
    PFN_vkEnumerateInstanceVersion instance_version; /* Vulkan 1.1 loaders and later */
    PFN_vkEnumeratePhysicalDevices enumerate;
    PFN_vkGetPhysicalDeviceProperties properties;
    PFN_vkGetPhysicalDeviceProperties2 properties2;
    PFN_vkGetPhysicalDeviceMemoryProperties memory;
    PFN_vkGetPhysicalDeviceMemoryProperties2 memory2;
    PFN_vkGetPhysicalDeviceFeatures2 features2;
    PFN_vkEnumerateDeviceExtensionProperties extensions;
    uint32_t instance_api; /* the version the instance was created for */
};

static bool has_extension(const VkExtensionProperties *ext, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (strncmp(ext[i].extensionName, name, VK_MAX_EXTENSION_NAME_SIZE) == 0)
            return true;
    return false;
}

static enum exo_device_kind kind_of(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
        return EXO_DEVICE_KIND_CPU;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
        return EXO_DEVICE_KIND_GPU;
    default:
        return EXO_DEVICE_KIND_ACCEL;
    }
}

/* Sizes of the device-local heaps (and their budgets when VK_EXT_memory_budget tells them). */
static void read_memory(const struct vk_api *f, VkPhysicalDevice pd, bool budget,
                        struct exo_device *d)
{
    VkPhysicalDeviceMemoryBudgetPropertiesEXT b = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT,
    };
    VkPhysicalDeviceMemoryProperties2 m2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
        .pNext = budget ? &b : NULL,
    };
    if (f->memory2)
        f->memory2(pd, &m2);
    else
        f->memory(pd, &m2.memoryProperties);
    const VkPhysicalDeviceMemoryProperties *m = &m2.memoryProperties;
    uint64_t total = 0, free_bytes = 0;
    for (uint32_t i = 0; i < m->memoryHeapCount && i < VK_MAX_MEMORY_HEAPS; i++) {
        if (!(m->memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT))
            continue;
        total += m->memoryHeaps[i].size;
        if (budget && f->memory2 && b.heapBudget[i] >= b.heapUsage[i])
            free_bytes += b.heapBudget[i] - b.heapUsage[i];
    }
    d->mem_total = total;
    d->mem_free = free_bytes <= total ? free_bytes : total;
}

static void describe(const struct vk_api *f, VkPhysicalDevice pd, int32_t index,
                     struct exo_device *d)
{
    VkPhysicalDeviceProperties p;
    f->properties(pd, &p);
    uint32_t n_ext = 0;
    VkExtensionProperties *ext = NULL;
    if (f->extensions(pd, NULL, &n_ext, NULL) == VK_SUCCESS && n_ext > 0 &&
        n_ext <= MAX_EXTENSIONS) {
        ext = exo_calloc(n_ext, sizeof(*ext));
        if (ext && f->extensions(pd, NULL, &n_ext, ext) < 0)
            n_ext = 0;
    }
    if (!ext)
        n_ext = 0;
    /* Vulkan 1.2 structures are valid only when both the instance and the device are 1.2. */
    bool api12 = p.apiVersion >= VK_API_VERSION_1_2 && f->instance_api >= VK_API_VERSION_1_2;
    bool pci_ext = has_extension(ext, n_ext, VK_EXT_PCI_BUS_INFO_EXTENSION_NAME);
    bool budget_ext = has_extension(ext, n_ext, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
    bool driver_props = api12 || has_extension(ext, n_ext, "VK_KHR_driver_properties");
    exo_free(ext);

    exo_device_init(d, kind_of(p.deviceType), EXO_DEVICE_API_VULKAN, index);
    exo_probe_copy(d->name, sizeof(d->name), p.deviceName, sizeof(p.deviceName));
    snprintf(d->vendor, sizeof(d->vendor), "%s", exo_probe_vendor_name(p.vendorID));
    d->mem_shared = p.deviceType == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
                    p.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;

    VkPhysicalDevicePCIBusInfoPropertiesEXT pci = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PCI_BUS_INFO_PROPERTIES_EXT,
    };
    VkPhysicalDeviceDriverProperties drv = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES,
        .pNext = pci_ext ? &pci : NULL,
    };
    VkPhysicalDeviceSubgroupProperties sub = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
        .pNext = driver_props ? (void *)&drv
                 : pci_ext    ? (void *)&pci
                              : NULL,
    };
    VkPhysicalDeviceIDProperties id = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_ID_PROPERTIES,
        .pNext = &sub,
    };
    VkPhysicalDeviceProperties2 p2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
        .pNext = &id,
    };
    char driver[EXO_DEVICE_DRIVER_SIZE] = "";
    if (f->properties2 && p.apiVersion >= VK_API_VERSION_1_1) {
        f->properties2(pd, &p2);
        memcpy(d->uuid, id.deviceUUID, 16);
        d->has_uuid = d->kind != EXO_DEVICE_KIND_CPU;
        d->subgroup_size = sub.subgroupSize;
        if (driver_props) {
            /* "llvmpipe Mesa 22.3.6 (LLVM 15.0.6)": the driver's name, then its own info. */
            char name[VK_MAX_DRIVER_NAME_SIZE + 1], info[VK_MAX_DRIVER_INFO_SIZE + 1];
            exo_probe_copy(name, sizeof(name), drv.driverName, sizeof(drv.driverName));
            exo_probe_copy(info, sizeof(info), drv.driverInfo, sizeof(drv.driverInfo));
            exo_probe_join(driver, sizeof(driver), name, " ", info);
        }
        if (pci_ext && pci.pciBus <= 0xff && pci.pciDevice <= 0x1f && pci.pciFunction <= 7 &&
            pci.pciDomain <= 0xffff)
            snprintf(d->pci, sizeof(d->pci), "%04x:%02x:%02x.%x", pci.pciDomain, pci.pciBus,
                     pci.pciDevice, pci.pciFunction);
    }
    if (!driver[0])
        snprintf(driver, sizeof(driver), "Vulkan %u.%u driver 0x%x",
                 VK_API_VERSION_MAJOR(p.apiVersion), VK_API_VERSION_MINOR(p.apiVersion),
                 p.driverVersion);
    if (f->features2 && api12) {
        VkPhysicalDeviceVulkan12Features f12 = {
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        };
        VkPhysicalDeviceFeatures2 feat = {
            .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
            .pNext = &f12,
        };
        f->features2(pd, &feat);
        if (f12.shaderFloat16)
            d->features |= EXO_DEVICE_FEAT_FP16;
    }
    if (d->kind != EXO_DEVICE_KIND_CPU)
        read_memory(f, pd, budget_ext, d);
    exo_device_bind(d, EXO_DEVICE_API_VULKAN, index, d->name, driver);
}

static bool load(VkInstance inst, struct vk_api *f)
{
#define GET(field, name) *(void **)&f->field = (void *)f->get_proc(inst, name)
    GET(enumerate, "vkEnumeratePhysicalDevices");
    GET(properties, "vkGetPhysicalDeviceProperties");
    GET(properties2, "vkGetPhysicalDeviceProperties2");
    GET(memory, "vkGetPhysicalDeviceMemoryProperties");
    GET(memory2, "vkGetPhysicalDeviceMemoryProperties2");
    GET(features2, "vkGetPhysicalDeviceFeatures2");
    GET(extensions, "vkEnumerateDeviceExtensionProperties");
#undef GET
    return f->enumerate && f->properties && f->memory && f->extensions;
}

/* One instance for the whole process, created by the first detection and kept: Mesa's ICDs
 * (lavapipe among them) do not survive being unloaded, which destroying the last instance
 * does, and later detections (devices come and go) skip the loader's start-up. */
static pthread_mutex_t vk_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    bool tried;
    int rc;
    char why[256];
    struct vk_api f;
    VkInstance inst;
} vk;

/* Load the loader and create the instance into vk; the reason for a failure in vk.why. */
static int open_vulkan(const char *lib_name)
{
    struct vk_api *f = &vk.f;
    void *lib = exo_probe_dlopen(lib_name, vk.why, sizeof(vk.why));
    if (!lib)
        return EXO_ENODEV;
    *(void **)&f->get_proc = dlsym(lib, "vkGetInstanceProcAddr");
    if (!f->get_proc) {
        snprintf(vk.why, sizeof(vk.why), "%s lacks vkGetInstanceProcAddr", lib_name);
        return EXO_ENODEV;
    }
    *(void **)&f->create_instance = (void *)f->get_proc(VK_NULL_HANDLE, "vkCreateInstance");
    *(void **)&f->instance_version =
        (void *)f->get_proc(VK_NULL_HANDLE, "vkEnumerateInstanceVersion");
    uint32_t version = VK_API_VERSION_1_0;
    if (f->instance_version && f->instance_version(&version) != VK_SUCCESS)
        version = VK_API_VERSION_1_0;
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "exo",
        .pEngineName = "exo",
        /* Ask for 1.2 where the loader has it, so 1.2 devices report driver properties. */
        .apiVersion = version >= VK_API_VERSION_1_2   ? VK_API_VERSION_1_2
                      : version >= VK_API_VERSION_1_1 ? VK_API_VERSION_1_1
                                                      : VK_API_VERSION_1_0,
    };
    VkInstanceCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pApplicationInfo = &app,
    };
    VkResult vr = f->create_instance ? f->create_instance(&info, NULL, &vk.inst)
                                     : VK_ERROR_INITIALIZATION_FAILED;
    if (vr != VK_SUCCESS) {
        snprintf(vk.why, sizeof(vk.why), "vkCreateInstance failed (VkResult %d)", (int)vr);
        vk.inst = VK_NULL_HANDLE;
        return EXO_ENODEV;
    }
    if (!load(vk.inst, f)) {
        snprintf(vk.why, sizeof(vk.why), "the Vulkan loader lacks core 1.0 entry points");
        return EXO_ENODEV;
    }
    f->instance_api = app.apiVersion;
    if (app.apiVersion < VK_API_VERSION_1_1) {
        /* 1.1 entry points may still be returned, but calling them on a 1.0 instance is not
         * allowed. */
        f->properties2 = NULL;
        f->memory2 = NULL;
        f->features2 = NULL;
    }
    return 0;
}

int exo_probe_vulkan(const struct exo_detect_options *o, struct exo_device_list *l)
{
    pthread_mutex_lock(&vk_lock);
    if (!vk.tried) {
        vk.tried = true;
        vk.rc = open_vulkan(o->vulkan_library ? o->vulkan_library : "libvulkan.so.1");
    }
    int rc = vk.rc;
    if (rc < 0) {
        exo_log(EXO_LOG_INFO, "device", "Vulkan not available, skipping it: %s", vk.why);
        goto out;
    }
    VkPhysicalDevice pds[MAX_PHYSICAL_DEVICES];
    uint32_t n = MAX_PHYSICAL_DEVICES;
    VkResult vr = vk.f.enumerate(vk.inst, &n, pds);
    if (vr != VK_SUCCESS && vr != VK_INCOMPLETE) {
        exo_log(EXO_LOG_INFO, "device", "vkEnumeratePhysicalDevices failed (VkResult %d)", (int)vr);
        rc = EXO_ENODEV;
        goto out;
    }
    for (uint32_t i = 0; i < n && i < MAX_PHYSICAL_DEVICES; i++) {
        struct exo_device d;
        describe(&vk.f, pds[i], (int32_t)i, &d);
        exo_device_list_merge(l, &d);
    }
out:
    pthread_mutex_unlock(&vk_lock);
    return rc;
}
