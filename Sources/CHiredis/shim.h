#ifndef KVDUEL_CHIREDIS_SHIM_H
#define KVDUEL_CHIREDIS_SHIM_H
// hiredis (Debian libhiredis-dev), the Redis client the remote tier uses.
#include <hiredis/hiredis.h>
#endif
