/*
 * irisvip.h — the IRIS $ZF callout ABI as irisvip uses it, and irisvip's exports.
 *
 * Written from the documented facts (see README, "IRIS callout ABI"): InterSystems'
 * "Using the $ZF Callout Interface" guide and the $ZF reference pages. No InterSystems
 * header is copied. build.rs runs bindgen over this file, so the Rust side uses exactly
 * the layout declared here; a C caller (or a test host) can include it as is.
 */
#ifndef IRISVIP_H
#define IRISVIP_H

#include <wchar.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exit status of a callout function (not the value ObjectScript sees). */
#define IRISVIP_ZF_SUCCESS 0
#define IRISVIP_ZF_FAILURE 1

/* Default capacity of a $ZF reply string (ZFString), NUL included. */
#define IRISVIP_DEFAULT_STRSIZE 32767

/*
 * One function table entry: name, argument descriptor, function.
 * The function pointer has no prototype on purpose: IRIS calls each entry with the
 * arguments its descriptor names. The table ends with an all-NULL entry.
 */
typedef struct zfestr {
    const char *zfename;
    const char *zfead;
    int (*zfeep)();
} zfestr;

/*
 * IRIS's callback table (cbtp) as passed to GetZFTable on Linux: nine slots, in this order.
 */
typedef struct irisvip_callbacks {
    int (*zfstrsize)(void);                      /* 1: capacity of a $ZF reply string */
    int (*zferror)(int, int);                    /* 2 */
    int (*mgrdira)(int len, char *buf);          /* 3: manager directory, narrow */
    int (*mgrdirw)(int len, unsigned short *buf);/* 4: manager directory, UTF-16 */
    int (*sigrtchk)(void);                       /* 5: -1 error, 0 restart, 1 SIGINT/SIGTERM: stop */
    int (*sigrtclr)(void);                       /* 6: clear the signal state before a blocking call */
    int (*dzfalarm)(void);                       /* 7: the only sanctioned SIGALRM */
    int (*zfresjob)(void);                       /* 8 */
    int (*mgrdirh)(int len, wchar_t *buf);       /* 9: manager directory, wide */
} irisvip_callbacks;

/* Signature of every irisvip entry (descriptor "cC"): config in, NUL-terminated JSON out. */
typedef int (*irisvip_entry_fn)(const char *config, char *result);

/* Signatures of the loader hooks. */
typedef const zfestr *(*irisvip_get_table_fn)(const irisvip_callbacks *cbtp, const void *eftp);
typedef int (*irisvip_init_fn)(void);
typedef int (*irisvip_unload_fn)(void);

/*
 * Exports. Entries always return IRISVIP_ZF_SUCCESS once a result was written (success
 * or failure is inside the JSON); IRISVIP_ZF_FAILURE only when result is NULL.
 * `result` must hold zfstrsize() bytes; never more is written, the NUL included. A
 * zfstrsize() of 0 or less is taken as a buffer of one byte (IRIS reserves at least ZFString
 * for every C output, so the answer is wrong, not the buffer empty): a single NUL is written,
 * the empty string, never a stale buffer. Capacities 1 and 2 get the empty string as well
 * (no JSON fits); from 3 on, the longest object that fits.
 *
 * Signals: each call invokes sigrtclr() once as it starts, then sigrtchk() every 50 ms while
 * it runs; an answer of 1 ends the call at once with error kind "interrupted" (requests in
 * flight are abandoned, not undone). A NULL table or slot means never interrupted. For the
 * duration of a call SIGPIPE is blocked in the calling thread's mask (a write to a connection
 * the peer closed then fails with EPIPE instead of killing the process) and a SIGPIPE left
 * pending is consumed before the mask is restored; no other signal or thread is touched.
 */
const zfestr *GetZFTable(const irisvip_callbacks *cbtp, const void *eftp);
int ZFInit(void);
int ZFUnload(void);
int vip_claim(const char *config, char *result);   /* table entry 1, "cC" */
int vip_release(const char *config, char *result); /* table entry 2, "cC" */
int vip_status(const char *config, char *result);  /* table entry 3, "cC" */
int vip_check(const char *config, char *result);   /* table entry 4, "cC": preflight, changes nothing */

#ifdef __cplusplus
}
#endif

#endif /* IRISVIP_H */
