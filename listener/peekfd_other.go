//go:build unix && !linux

package listener

import "golang.org/x/sys/unix"

// peekFD does a non-blocking recv(MSG_PEEK|MSG_DONTWAIT) of one byte. Outside
// Linux it goes through unix.Recvfrom, which may allocate.
func peekFD(fd int) State {
	var b [1]byte
	for {
		n, _, err := unix.Recvfrom(fd, b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN || err == unix.EWOULDBLOCK:
			return StateIdle
		case err != nil || n == 0: // reset or other error, or EOF
			return StateClosed
		default:
			return StateData
		}
	}
}
