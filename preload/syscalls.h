/*
 * Raw Linux system calls for the preload library, which links no libc: the same file loads
 * into glibc and musl programs. Each call returns the kernel's value (-errno on failure);
 * nothing here touches the program's errno.
 */
#ifndef MICROENFORCER_SYSCALLS_H
#define MICROENFORCER_SYSCALLS_H

typedef unsigned long ulong;
typedef long slong;

#if defined(__x86_64__)
enum {
  SYS_read = 0, SYS_write = 1, SYS_close = 3, SYS_getpid = 39, SYS_socket = 41, SYS_connect = 42,
  SYS_sendto = 44, SYS_recvfrom = 45, SYS_getcwd = 79, SYS_getppid = 110, SYS_getresuid = 118,
  SYS_getresgid = 120, SYS_clock_gettime = 228, SYS_exit_group = 231, SYS_openat = 257,
  SYS_readlinkat = 267, SYS_ppoll = 271, SYS_nanosleep = 35, SYS_statx = 332, SYS_pread64 = 17,
  SYS_prctl = 157, SYS_getsockopt = 55,
};

static inline slong raw_syscall6(slong n, slong a, slong b, slong c, slong d, slong e, slong f) {
  register slong r10 __asm__("r10") = d;
  register slong r8 __asm__("r8") = e;
  register slong r9 __asm__("r9") = f;
  slong ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
enum {
  SYS_getcwd = 17, SYS_openat = 56, SYS_close = 57, SYS_read = 63, SYS_write = 64, SYS_ppoll = 73,
  SYS_readlinkat = 78, SYS_exit_group = 94, SYS_nanosleep = 101, SYS_clock_gettime = 113,
  SYS_getresuid = 148, SYS_getresgid = 150, SYS_getpid = 172, SYS_getppid = 173, SYS_socket = 198,
  SYS_connect = 203, SYS_sendto = 206, SYS_recvfrom = 207, SYS_statx = 291, SYS_pread64 = 67,
  SYS_prctl = 167, SYS_getsockopt = 209,
};

static inline slong raw_syscall6(slong n, slong a, slong b, slong c, slong d, slong e, slong f) {
  register slong x8 __asm__("x8") = n;
  register slong x0 __asm__("x0") = a;
  register slong x1 __asm__("x1") = b;
  register slong x2 __asm__("x2") = c;
  register slong x3 __asm__("x3") = d;
  register slong x4 __asm__("x4") = e;
  register slong x5 __asm__("x5") = f;
  __asm__ volatile("svc #0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
}
#else
#error "microenforcer preload: x86_64 and aarch64 only"
#endif

#define sys0(n) raw_syscall6((n), 0, 0, 0, 0, 0, 0)
#define sys1(n, a) raw_syscall6((n), (slong)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) raw_syscall6((n), (slong)(a), (slong)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) raw_syscall6((n), (slong)(a), (slong)(b), (slong)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) raw_syscall6((n), (slong)(a), (slong)(b), (slong)(c), (slong)(d), 0, 0)
#define sys5(n, a, b, c, d, e) raw_syscall6((n), (slong)(a), (slong)(b), (slong)(c), (slong)(d), (slong)(e), 0)
#define sys6(n, a, b, c, d, e, f) raw_syscall6((n), (slong)(a), (slong)(b), (slong)(c), (slong)(d), (slong)(e), (slong)(f))

/* The constants below are the same on both architectures. */
enum {
  E_INTR = 4, E_AGAIN = 11,
  AT_FDCWD_ = -100, O_RDONLY_ = 0, O_CLOEXEC_ = 02000000,
  AF_UNIX_ = 1, SOCK_STREAM_ = 1, SOCK_NONBLOCK_ = 04000, SOCK_CLOEXEC_ = 02000000,
  MSG_DONTWAIT_ = 0x40, MSG_NOSIGNAL_ = 0x4000,
  POLLIN_ = 0x1, POLLOUT_ = 0x4, CLOCK_MONOTONIC_ = 1,
  STATX_BASIC_STATS_ = 0x7ff, E_BADF = 9, E_NOTSOCK = 88, SOL_SOCKET_ = 1, SO_DOMAIN_ = 39,
};

struct kernel_timespec { slong sec; slong nsec; };
struct kernel_pollfd { int fd; short events; short revents; };
struct kernel_sockaddr_un { unsigned short family; char path[108]; };

struct statx_timestamp { slong sec; unsigned int nsec; int reserved; };
struct kernel_statx {
  unsigned int mask, blksize;
  unsigned long long attributes;
  unsigned int nlink, uid, gid;
  unsigned short mode, spare0;
  unsigned long long ino, size, blocks, attributes_mask;
  struct statx_timestamp atime, btime, ctime, mtime;
  unsigned int rdev_major, rdev_minor, dev_major, dev_minor;
  unsigned long long spare2[14];
};

#endif
