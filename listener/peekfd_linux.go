package listener

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// peekFD does a non-blocking recv(MSG_PEEK|MSG_DONTWAIT) of one byte. It
// calls recvfrom directly because unix.Recvfrom allocates the source address
// it does not need on every call.
func peekFD(fd int) State {
	var b [1]byte
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN || errno == unix.EWOULDBLOCK:
			return StateIdle
		case errno != 0 || n == 0: // reset or other error, or EOF
			return StateClosed
		default:
			return StateData
		}
	}
}
