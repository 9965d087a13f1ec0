package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"shardgate/shm"
	"shardgate/upstream"
)

// slotsName is the name the shared slot segment is handed down under, next
// to the listening sockets (listener.Export).
const slotsName = "slots"

// openSlots maps the shared slot segment this process was handed (by the
// process it replaces in an upgrade, or by its supervisor), or creates one.
// A segment of another layout (an upgrade across versions of it) is not
// used: this process then counts its slots apart from the old one until
// that one has drained, and says so.
func openSlots(inherited map[string][]*os.File, log *slog.Logger) (*shm.Segment, error) {
	files := inherited[slotsName]
	if len(files) == 0 {
		return shm.Create()
	}
	delete(inherited, slotsName)
	defer closeInherited(map[string][]*os.File{slotsName: files})
	seg, err := shm.Open(files[0])
	if errors.Is(err, shm.ErrBadSegment) {
		log.Warn("inherited slot segment has another layout; limits count apart from the old process until it has drained",
			"error", err)
		return shm.Create()
	}
	if err != nil {
		return nil, fmt.Errorf("inherited slot segment: %w", err)
	}
	return seg, nil
}

// joinSlots opens the slot segment (openSlots) and joins it. Every gateway
// process counts its slots there, so that the processes of one instance
// never admit more than a limit between them.
func joinSlots(inherited map[string][]*os.File, log *slog.Logger) (*shm.Segment, *upstream.Shared, error) {
	_, handed := inherited[slotsName]
	seg, err := openSlots(inherited, log)
	if err != nil {
		return nil, nil, err
	}
	proc, err := seg.Join()
	if err != nil {
		seg.Close()
		return nil, nil, err
	}
	log.Debug("slot segment joined", "process", proc.Index(), "inherited", handed)
	sh := upstream.NewShared(proc)
	sh.Start()
	return seg, sh, nil
}

// dupFile returns a new descriptor of f, for a child process; the caller
// closes it once the child has started.
func dupFile(f *os.File) (*os.File, error) {
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("duplicating %s: %w", f.Name(), err)
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), f.Name()), nil
}
