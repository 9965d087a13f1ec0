package listener

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerFinished reads the TCP state, the first byte of struct tcp_info (the
// kernel copies no more than asked for). It calls getsockopt directly
// because unix.GetsockoptTCPInfo allocates the whole struct per call.
func peerFinished(fd int) bool {
	var info [8]byte
	n := uint32(len(info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 || n < 1 {
		return false
	}
	switch info[0] {
	case unix.BPF_TCP_CLOSE_WAIT, unix.BPF_TCP_LAST_ACK, unix.BPF_TCP_CLOSE, unix.BPF_TCP_CLOSING, unix.BPF_TCP_TIME_WAIT:
		return true
	}
	return false
}
