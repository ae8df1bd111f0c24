package executor

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompAvailable reports that this build confines children with seccomp.
const seccompAvailable = true

// Blocked system calls (TEN-2): network, process creation, exec, tracing,
// namespace, mount and privilege changes, and limit changes. A job that
// makes one is killed by the kernel with SIGSYS, which the parent reports
// as an isolation violation.
var blockedSyscalls = []uint32{
	unix.SYS_SOCKET, unix.SYS_SOCKETPAIR, unix.SYS_CONNECT, unix.SYS_BIND, unix.SYS_LISTEN, unix.SYS_ACCEPT,
	unix.SYS_ACCEPT4, unix.SYS_SENDTO, unix.SYS_SENDMSG, unix.SYS_RECVFROM, unix.SYS_RECVMSG,
	unix.SYS_FORK, unix.SYS_VFORK, unix.SYS_EXECVE, unix.SYS_EXECVEAT,
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV,
	unix.SYS_UNSHARE, unix.SYS_SETNS, unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT,
	unix.SYS_SETUID, unix.SYS_SETGID, unix.SYS_SETREUID, unix.SYS_SETREGID, unix.SYS_SETRESUID, unix.SYS_SETRESGID,
	unix.SYS_SETFSUID, unix.SYS_SETFSGID, unix.SYS_SETGROUPS,
	unix.SYS_SETRLIMIT, unix.SYS_PRLIMIT64, unix.SYS_KEXEC_LOAD, unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_IO_URING_SETUP,
}

const (
	auditArchX8664 = 0xc000003e
	x32SyscallBit  = 0x40000000
	retKillProcess = 0x80000000
	retAllow       = 0x7fff0000
	retErrno       = 0x00050000
	cloneThread    = 0x00010000 // CLONE_THREAD
	sysClone3      = 435
)

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// filter builds the BPF program. seccomp_data: nr at 0, arch at 4, args at 16.
func filter() []unix.SockFilter {
	const (
		ldw  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret  = unix.BPF_RET | unix.BPF_K
	)
	p := []unix.SockFilter{
		stmt(ldw, 4),
		jump(jeq, auditArchX8664, 1, 0),
		stmt(ret, retKillProcess),
		stmt(ldw, 0),
		jump(jge, x32SyscallBit, 0, 1),
		stmt(ret, retKillProcess),
	}
	for _, nr := range blockedSyscalls {
		p = append(p, jump(jeq, nr, 0, 1), stmt(ret, retKillProcess))
	}
	// clone is allowed for threads only (the Go runtime), never for new
	// processes; clone3 hides its flags in memory, so it reports ENOSYS and
	// callers fall back to clone.
	p = append(p,
		jump(jeq, sysClone3, 0, 1), stmt(ret, retErrno|uint32(unix.ENOSYS)),
		jump(jeq, unix.SYS_CLONE, 0, 4),
		stmt(ldw, 16),
		jump(jset, cloneThread, 0, 1),
		stmt(ret, retAllow),
		stmt(ret, retKillProcess),
		stmt(ret, retAllow),
	)
	return p
}

// confine installs the seccomp filter on every thread of the process
// (TSYNC), after setting no_new_privs. It cannot be undone.
func confine() error {
	// no_new_privs is per thread: both calls must run on the same one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	f := filter()
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&prog))); errno != 0 {
		return fmt.Errorf("seccomp: %w", errno)
	}
	return nil
}
