/* A stand-in for Windows' bcryptprimitives.dll, for Wine only (see cross/README.md, "Windows
 * and macOS"). Rust's std (1.78 and later) takes its random bytes from ProcessPrng in
 * bcryptprimitives.dll, which every supported Windows has but Debian 12's Wine 8.0 lacks, so
 * no Rust program starts there. This DLL exports ProcessPrng on top of RtlGenRandom
 * (advapi32's SystemFunction036), which Wine has. It is copied into the private Wine prefix
 * under target/ by cross/platforms.sh and is never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
