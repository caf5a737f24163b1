/* SPDX-License-Identifier: Apache-2.0 */
/* The few macros every part of npufarm shares. */
#pragma once

#include <stddef.h>

/* The structure of type @type whose member @member is at @ptr. */
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr)-offsetof(type, member)))
