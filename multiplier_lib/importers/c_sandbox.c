/* The process that tabulates an imported C model: a seccomp sandbox around dlopen().
 *
 * hwcost compiles this runner next to the model's shared library and runs it as
 *     runner MODEL.so A_BITS B_BITS OUT
 * It opens OUT, confines itself, and only then loads the model, so that the model's
 * constructors (__attribute__((constructor))) run confined as well as its function.
 *
 * Confined means a seccomp filter (Linux) that kills the process on any system call that
 * would write or create a file (open with a write flag, creat, openat2, rename, unlink,
 * mkdir, link, chmod, truncate, mknod...), start a process (fork, vfork, clone, clone3,
 * execve), open a socket, signal another process, raise a resource limit, change the
 * session or namespaces, trace a process, or inject terminal input (ioctl TIOCSTI).  What
 * stays allowed: reading files the user can read, computing, writing to the file
 * descriptors it was given (stdout and stderr, and OUT), memory within RLIMIT_AS.
 *
 * Built with -DHWCOST_NO_SANDBOX (where seccomp does not exist and the user said
 * --trust-c) it runs the model unconfined.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef HWCOST_NO_SANDBOX
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif

#if defined(__x86_64__)
#define HWCOST_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define HWCOST_ARCH AUDIT_ARCH_AARCH64
#elif defined(__riscv) && __riscv_xlen == 64
#define HWCOST_ARCH AUDIT_ARCH_RISCV64
#else
#error "no seccomp architecture constant for this CPU: build with --trust-c"
#endif

#define KILL BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LOAD_ARG(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
/* the syscall numbered NR kills the process */
#define DENY(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), KILL
#define WRITE_FLAGS (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)

static int confine(pid_t self) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, HWCOST_ARCH, 1, 0),
        KILL,                                        /* another ABI (x86 int 0x80, x32) */
        LOAD_NR,
#if defined(__x86_64__)
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1), KILL,   /* x32 numbers */
#endif
        /* openat(dirfd, path, flags): allowed read-only */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_openat, 0, 4),
        LOAD_ARG(2),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, WRITE_FLAGS, 0, 1), KILL,
        ALLOW,
#ifdef __NR_open
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_open, 0, 4),
        LOAD_ARG(1),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, WRITE_FLAGS, 0, 1), KILL,
        ALLOW,
#endif
        /* ioctl(fd, TIOCSTI/TIOCLINUX): typing into the user's terminal */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 6),
        LOAD_ARG(1),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 0, 1), KILL,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 0, 1), KILL,
        ALLOW,
        /* tgkill/tkill/kill: only this process (abort() signals itself) */
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_tgkill, 0, 4),
        LOAD_ARG(0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)self, 0, 1), ALLOW,
        KILL,
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_kill, 0, 4),
        LOAD_ARG(0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)self, 0, 1), ALLOW,
        KILL,
        /* processes, programs, sockets, limits, sessions, namespaces, tracing */
        DENY(__NR_execve), DENY(__NR_execveat), DENY(__NR_clone),
#ifdef __NR_clone3
        DENY(__NR_clone3),
#endif
#ifdef __NR_fork
        DENY(__NR_fork),
#endif
#ifdef __NR_vfork
        DENY(__NR_vfork),
#endif
        DENY(__NR_socket), DENY(__NR_socketpair), DENY(__NR_connect), DENY(__NR_bind),
        DENY(__NR_listen), DENY(__NR_accept4), DENY(__NR_tkill),
#ifdef __NR_accept
        DENY(__NR_accept),
#endif
        DENY(__NR_setrlimit), DENY(__NR_prlimit64), DENY(__NR_setsid), DENY(__NR_setpgid),
        DENY(__NR_ptrace), DENY(__NR_process_vm_writev), DENY(__NR_unshare), DENY(__NR_setns),
        DENY(__NR_mount), DENY(__NR_umount2), DENY(__NR_pivot_root), DENY(__NR_chroot),
        DENY(__NR_bpf), DENY(__NR_perf_event_open), DENY(__NR_keyctl), DENY(__NR_add_key),
        DENY(__NR_request_key), DENY(__NR_prctl), DENY(__NR_seccomp),
#ifdef __NR_io_uring_setup
        DENY(__NR_io_uring_setup), DENY(__NR_io_uring_enter), DENY(__NR_io_uring_register),
#endif
#ifdef __NR_openat2
        DENY(__NR_openat2),
#endif
        DENY(__NR_open_by_handle_at), DENY(__NR_name_to_handle_at),
        /* files: created, removed, renamed, linked, truncated, re-permissioned */
        DENY(__NR_mknodat), DENY(__NR_unlinkat), DENY(__NR_renameat2), DENY(__NR_mkdirat),
        DENY(__NR_linkat), DENY(__NR_symlinkat), DENY(__NR_fchmodat), DENY(__NR_fchownat),
        DENY(__NR_truncate), DENY(__NR_fchmod), DENY(__NR_fchown), DENY(__NR_utimensat),
#ifdef __NR_renameat
        DENY(__NR_renameat),
#endif
#ifdef __NR_creat
        DENY(__NR_creat), DENY(__NR_mknod), DENY(__NR_unlink), DENY(__NR_rename),
        DENY(__NR_mkdir), DENY(__NR_rmdir), DENY(__NR_link), DENY(__NR_symlink),
        DENY(__NR_chmod), DENY(__NR_chown), DENY(__NR_lchown), DENY(__NR_utimes),
#endif
        ALLOW,
    };
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}
#endif

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: runner MODEL.so A_BITS B_BITS OUT\n");
        return 2;
    }
    int a_bits = atoi(argv[2]), b_bits = atoi(argv[3]);
    if (a_bits < 1 || b_bits < 1 || a_bits + b_bits > 24) {
        fprintf(stderr, "operand widths out of range\n");
        return 2;
    }
    size_t n = (size_t)1 << (a_bits + b_bits);
    uint64_t *out = calloc(n, sizeof *out);
    int fd = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out == NULL || fd < 0) {
        fprintf(stderr, "cannot prepare the output: %s\n", strerror(errno));
        return 2;
    }
#ifndef HWCOST_NO_SANDBOX
    if (confine(getpid()) != 0) {
        fprintf(stderr, "cannot install the seccomp sandbox: %s\n", strerror(errno));
        return 3;
    }
#endif
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "cannot load the model: %s\n", dlerror());
        return 4;
    }
    void (*eval_all)(uint64_t *, int, int) =
        (void (*)(uint64_t *, int, int))dlsym(lib, "hwcost_eval_all");
    if (eval_all == NULL) {
        fprintf(stderr, "the model has no hwcost_eval_all\n");
        return 4;
    }
    eval_all(out, a_bits, b_bits);
    const char *p = (const char *)out;
    size_t left = n * sizeof *out;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w <= 0) {
            fprintf(stderr, "cannot write the table: %s\n", strerror(errno));
            return 5;
        }
        p += w;
        left -= (size_t)w;
    }
    return 0;
}
