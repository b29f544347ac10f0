/* Stub for type-checking only (cross/platform-stubs/README.md): the macOS SDK's
 * TargetConditionals.h as ring's C code sees it when built for macOS (not iOS). */
#ifndef CROPSCODE_STUB_TARGETCONDITIONALS_H
#define CROPSCODE_STUB_TARGETCONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
#define TARGET_OS_EMBEDDED 0
#endif
