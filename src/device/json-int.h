/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small cJSON helpers the device module's JSON writers share (devices, scores, telemetry).
 * cJSON has AddObjectToObject but nothing that appends a new object or string to an array and
 * cleans up when the append fails; these do. NULL / false means out of memory, and the array
 * is left as it was.
 */
#ifndef EXO_DEVICE_JSON_INT_H
#define EXO_DEVICE_JSON_INT_H

#include <stdbool.h>

#include <cjson/cJSON.h>

/* A new, empty object appended to arr (owned by arr). */
static inline cJSON *exo_json_append_object(cJSON *arr)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A copy of s appended to arr. */
static inline bool exo_json_append_string(cJSON *arr, const char *s)
{
    cJSON *v = cJSON_CreateString(s);
    if (v && !cJSON_AddItemToArray(arr, v)) {
        cJSON_Delete(v);
        return false;
    }
    return v != NULL;
}

#endif
