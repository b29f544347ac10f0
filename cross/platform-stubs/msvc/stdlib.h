/* Stub for type-checking only (cross/platform-stubs/README.md): what ring's C code needs from
 * the Windows SDK's <stdlib.h> when compiled by clang-cl without an SDK. */
#ifndef CROPSCODE_STUB_STDLIB_H
#define CROPSCODE_STUB_STDLIB_H
unsigned short __cdecl _byteswap_ushort(unsigned short);
unsigned long __cdecl _byteswap_ulong(unsigned long);
unsigned __int64 __cdecl _byteswap_uint64(unsigned __int64);
#endif
