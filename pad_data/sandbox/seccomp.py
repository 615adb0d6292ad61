"""Seccomp-BPF filters for sandbox workers (x86_64), built here and installed by the worker.

The parent builds the filters (plain ``struct sock_filter`` bytes) and hands them to the worker
in its config; the worker installs them with ``prctl`` before any program runs. Two filters stack:

- ``SANDBOX_DENY`` (the whole worker, installed before any program runs): kernel attack surface
  and container escapes (mount family, ptrace, keyctl, bpf, perf, namespaces, module loading,
  io_uring, userfaultfd, handle-based opens...), System V and POSIX IPC and extended-attribute
  writes (state that outlives a program: a channel to the next one), and sockets: the worker talks over pipes, and a
  fast-path program (run in the worker itself) that escaped Python must not reach the network
  or the socket a running stage answers reads on (pad_data.store.live_reads). ``clone`` that asks for new namespaces is denied;
  ``clone3`` answers ENOSYS so libc falls back to ``clone``, whose flags can be checked.
- ``CHILD_DENY`` (each forked program, on top): no new processes or threads, no exec, no
  signals or resource changes aimed at other processes, no sockets, and no writes to the
  file system (create, truncate, delete, rename, chmod...), so a program that escapes the
  Python layer can affect nothing but its own result.

Any other architecture (including the i386 and x32 entry points on x86_64) is refused.
"""

import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
RET_KILL_PROCESS = 0x80000000
EPERM, ENOSYS = 1, 38
CLONE_NS_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
O_WRITE_FLAGS = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000 | 0o20000000  # WRONLY RDWR CREAT TRUNC APPEND __O_TMPFILE

# x86_64 syscall numbers
SANDBOX_DENY = {
    "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135, "ustat": 136, "sysfs": 139,
    "vhangup": 153, "modify_ldt": 154, "pivot_root": 155, "_sysctl": 156, "adjtimex": 159,
    "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167,
    "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172,
    "ioperm": 173, "create_module": 174, "init_module": 175, "delete_module": 176,
    "get_kernel_syms": 177, "query_module": 178, "quotactl": 179, "nfsservctl": 180,
    "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246, "add_key": 248,
    "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298, "fanotify_init": 300,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308,
    "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_getfd": 438,
    "process_madvise": 440, "mount_setattr": 442, "quotactl_fd": 443, "process_mrelease": 448,
    "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50, "socketpair": 53, "accept4": 288,
    # System V and POSIX IPC, and extended attributes: objects that outlive a program, so a
    # channel between programs of one worker (and shared memory held past RLIMIT_AS)
    "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66, "shmdt": 67,
    "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71, "semtimedop": 220, "mq_open": 240,
    "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243, "mq_notify": 244,
    "mq_getsetattr": 245, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197,
    "lremovexattr": 198, "fremovexattr": 199, "setxattrat": 463, "removexattrat": 466,
}
CHILD_DENY = {
    "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50, "socketpair": 53,
    "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "kill": 62, "truncate": 76,
    "ftruncate": 77, "rename": 82, "mkdir": 83, "rmdir": 84, "creat": 85, "link": 86,
    "unlink": 87, "symlink": 88, "chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93,
    "lchown": 94, "rt_sigqueueinfo": 129, "utime": 132, "mknod": 133, "setpriority": 141,
    "sched_setparam": 142, "sched_setscheduler": 144, "setrlimit": 160, "tkill": 200,
    "sched_setaffinity": 203, "tgkill": 234, "utimes": 235, "mbind": 237, "set_mempolicy": 238,
    "ioprio_set": 251, "migrate_pages": 256, "mkdirat": 258, "mknodat": 259, "fchownat": 260,
    "futimesat": 261, "unlinkat": 263, "renameat": 264, "linkat": 265, "symlinkat": 266,
    "fchmodat": 268, "move_pages": 279, "utimensat": 280, "accept4": 288,
    "rt_tgsigqueueinfo": 297, "prlimit64": 302, "sched_setattr": 314, "renameat2": 316,
    "execveat": 322, "pidfd_send_signal": 424, "pidfd_open": 434, "openat2": 437,
    "fchmodat2": 452,
}
NR_CLONE, NR_CLONE3, NR_OPEN, NR_OPENAT, NR_FCNTL = 56, 435, 2, 257, 72
F_SIGNAL_CMDS = (8, 10, 15)  # F_SETOWN, F_SETSIG, F_SETOWN_EX: I/O signals aimed at another process


def _stmt(code: int, k: int) -> bytes:
    return struct.pack("HBBI", code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


LD_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06


def build(deny: dict, child: bool) -> bytes:
    """The BPF program (bytes of ``struct sock_filter``) for one filter."""
    deny_nrs = sorted(set(deny.values()))
    # Layout: header, per-syscall tests, the argument checks, then the three returns.
    ins: list = [("ld", 4), ("jne_kill", AUDIT_ARCH_X86_64), ("ld", 0), ("jge_errno", X32_BIT)]
    if not child:
        ins.append(("jeq_enosys", NR_CLONE3))
        ins.append(("jeq_goto", NR_CLONE, "clone"))
    else:
        ins.append(("jeq_errno", NR_CLONE3))
        ins.append(("jeq_goto", NR_OPEN, "open"))
        ins.append(("jeq_goto", NR_OPENAT, "openat"))
        ins.append(("jeq_goto", NR_FCNTL, "fcntl"))
    ins += [("jeq_errno", nr) for nr in deny_nrs]
    ins.append(("allow",))
    if not child:
        ins += [("label", "clone"), ("ld", 16), ("jset_errno", CLONE_NS_FLAGS), ("allow",)]
    else:
        ins += [("label", "open"), ("ld", 24), ("jset_errno", O_WRITE_FLAGS), ("allow",),
                ("label", "openat"), ("ld", 32), ("jset_errno", O_WRITE_FLAGS), ("allow",),
                ("label", "fcntl"), ("ld", 24)] + [("jeq_errno", cmd) for cmd in F_SIGNAL_CMDS] + [("allow",)]
    ins += [("label", "errno"), ("ret", RET_ERRNO | EPERM), ("label", "enosys"),
            ("ret", RET_ERRNO | ENOSYS), ("label", "kill"), ("ret", RET_KILL_PROCESS)]
    # resolve label positions (labels take no slot)
    pos, labels = 0, {}
    for op in ins:
        if op[0] == "label":
            labels[op[1]] = pos
        else:
            pos += 1
    out, pos = [], 0
    for op in ins:
        kind = op[0]
        if kind == "label":
            continue

        def rel(target: str) -> int:
            d = labels[target] - pos - 1
            if not 0 <= d < 256:
                raise ValueError("seccomp jump out of range")
            return d

        if kind == "ld":
            out.append(_stmt(LD_ABS, op[1]))
        elif kind == "jne_kill":
            out.append(_jump(JEQ, op[1], 0, rel("kill")))
        elif kind == "jge_errno":
            out.append(_jump(JGE, op[1], rel("errno"), 0))
        elif kind == "jeq_errno":
            out.append(_jump(JEQ, op[1], rel("errno"), 0))
        elif kind == "jeq_enosys":
            out.append(_jump(JEQ, op[1], rel("enosys"), 0))
        elif kind == "jeq_goto":
            out.append(_jump(JEQ, op[1], rel(op[2]), 0))
        elif kind == "jset_errno":
            out.append(_jump(JSET, op[1], rel("errno"), 0))
        elif kind == "allow":
            out.append(_stmt(RET, RET_ALLOW))
        elif kind == "ret":
            out.append(_stmt(RET, op[1]))
        pos += 1
    return b"".join(out)


def supported() -> bool:
    import platform

    return platform.machine() in ("x86_64", "AMD64") and struct.calcsize("P") == 8
