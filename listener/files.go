package listener

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

var (
	// ErrNoFiles is returned by FromFiles when it is given no file.
	ErrNoFiles = errors.New("listener: no inherited files")
	// ErrNotListener is returned by FromFiles for a file that is not a
	// listening TCP socket (a regular file, a UDP or connected socket).
	ErrNotListener = errors.New("listener: not a listening TCP socket")
	// ErrAddrMismatch is returned by FromFiles when the inherited sockets are
	// not all bound to the same address, so they cannot form one Group.
	ErrAddrMismatch = errors.New("listener: inherited sockets bound to different addresses")
)

// Files returns a duplicate descriptor of every shard socket, in shard order,
// for handing to a child process (exec.Cmd.ExtraFiles). The Group keeps its
// sockets and goes on accepting; the caller closes the files once the child
// has them. While either side holds a descriptor, the socket and its accept
// queue survive the other side's Close.
func (g *Group) Files() ([]*os.File, error) {
	files := make([]*os.File, 0, len(g.shards))
	for i, s := range g.shards {
		f, err := s.ln.File()
		if err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("duplicating shard %d of %s: %w", i, g.address, err)
		}
		files = append(files, f)
	}
	return files, nil
}

// FromFiles rebuilds a Group from inherited listening socket files (binary
// upgrade or systemd socket activation), one shard per file, in order. address
// is only the label Address reports; the sockets stay bound where they are.
//
// FromFiles takes ownership of files: it closes every one of them, on success
// (the Group holds its own duplicates) and on failure, so an inherited
// descriptor is never left open by accident. Closing them again is harmless.
func FromFiles(address string, files []*os.File) (*Group, error) {
	defer closeFiles(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("inheriting %s: %w", address, ErrNoFiles)
	}
	lns := make([]*net.TCPListener, 0, len(files))
	for i, f := range files {
		ln, err := inherit(f)
		if err != nil {
			closeListeners(lns)
			return nil, fmt.Errorf("inheriting %s from file %d (%s): %w", address, i, f.Name(), err)
		}
		lns = append(lns, ln)
	}
	if err := sameAddr(lns); err != nil {
		closeListeners(lns)
		return nil, fmt.Errorf("inheriting %s: %w", address, err)
	}
	return newGroup(address, lns), nil
}

// inherit turns one file into a TCP listener that owns its own duplicate of
// the descriptor.
func inherit(f *os.File) (*net.TCPListener, error) {
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotListener, err)
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		ln.Close()
		return nil, fmt.Errorf("%w: %s socket", ErrNotListener, ln.Addr().Network())
	}
	if err := checkListening(tl); err != nil {
		tl.Close()
		return nil, err
	}
	return tl, nil
}

// checkListening rejects a stream socket that is not in the listening state,
// such as a connected socket passed by systemd with Accept=yes.
func checkListening(ln *net.TCPListener) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	var on int
	var sockErr error
	if err := rc.Control(func(fd uintptr) {
		on, sockErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	}); err != nil {
		return err
	}
	if sockErr != nil {
		return fmt.Errorf("%w: %w", ErrNotListener, sockErr)
	}
	if on != 1 {
		return fmt.Errorf("%w: socket is not listening", ErrNotListener)
	}
	return nil
}

func sameAddr(lns []*net.TCPListener) error {
	want := lns[0].Addr().String()
	for i, ln := range lns[1:] {
		if got := ln.Addr().String(); got != want {
			return fmt.Errorf("%w: file %d is %s, file 0 is %s", ErrAddrMismatch, i+1, got, want)
		}
	}
	return nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
