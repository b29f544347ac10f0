/* Debian builds LLVM's libunwind (libunwind-14-dev) with _FORTIFY_SOURCE for glibc, so its
 * error paths call glibc's __fprintf_chk, which musl does not have. This is the one symbol
 * it needs; cross/env.sh links it after libunwind.a for the musl targets. */
#include <stdarg.h>
#include <stdio.h>

int __fprintf_chk(FILE *stream, int flag, const char *format, ...)
{
    va_list ap;
    int n;
    (void)flag;
    va_start(ap, format);
    n = vfprintf(stream, format, ap);
    va_end(ap);
    return n;
}
