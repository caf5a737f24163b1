/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resolve the runtime's C API with dlsym().  All-or-nothing: a runtime that
 * lacks any entry point the session child calls is refused before anything
 * is registered, with the missing name in the message.
 */
#include "config.h"

#include "tvm_capi.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "err.h"

#define CAPI_ENTRY(name)                               \
	{                                              \
#name, offsetof(struct tvm_capi, name) \
	}

static const struct {
	const char *name;
	size_t offset; /* of the function pointer in struct tvm_capi */
} capi_entries[] = {
    CAPI_ENTRY(TVMFuncGetGlobal),
    CAPI_ENTRY(TVMFuncCall),
    CAPI_ENTRY(TVMFuncFree),
    CAPI_ENTRY(TVMFuncCreateFromCFunc),
    CAPI_ENTRY(TVMFuncRegisterGlobal),
    CAPI_ENTRY(TVMCFuncSetReturn),
    CAPI_ENTRY(TVMGetLastError),
    CAPI_ENTRY(TVMAPISetLastError),
    CAPI_ENTRY(TVMModFree),
};

/*
 * Fill @ret_api from @lib, a handle from dlopen() (borrowed; it must stay
 * open as long as @ret_api is used, i.e. forever: the runtime is never
 * dlclose()d).  Returns 0, or -ENOENT naming the first missing symbol;
 * @ret_api is untouched on failure.  Does not log.
 */
int
tvm_capi_load(void *lib, struct tvm_capi *ret_api, struct npufarm_err *err)
{
	struct tvm_capi api;
	size_t i;

	_Static_assert(sizeof(void *) == sizeof(api.TVMFuncCall),
	    "POSIX: function pointers travel through dlsym's void *");
	for (i = 0; i < sizeof(capi_entries) / sizeof(capi_entries[0]); i++) {
		void *sym;

		(void)dlerror();
		sym = dlsym(lib, capi_entries[i].name);
		if (sym == NULL)
			return err_set(err, -ENOENT,
			    "the runtime does not export %s",
			    capi_entries[i].name);
		memcpy(
		    (char *)&api + capi_entries[i].offset, &sym, sizeof(sym));
	}
	*ret_api = api;
	return 0;
}
