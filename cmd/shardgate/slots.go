package main

import (
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

// joinSlots maps the shared slot segment this process was handed (by the
// process it replaces in an upgrade, or by its supervisor), or creates one,
// and joins it. Every gateway process counts its slots there, so that the
// processes of one instance never admit more than a limit between them.
func joinSlots(inherited map[string][]*os.File, log *slog.Logger) (*shm.Segment, *upstream.Shared, error) {
	var seg *shm.Segment
	var err error
	files := inherited[slotsName]
	if len(files) > 0 {
		delete(inherited, slotsName)
		seg, err = shm.Open(files[0])
		for _, f := range files {
			f.Close()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("inherited slot segment: %w", err)
		}
	} else if seg, err = shm.Create(); err != nil {
		return nil, nil, err
	}
	proc, err := seg.Join()
	if err != nil {
		seg.Close()
		return nil, nil, err
	}
	log.Debug("slot segment joined", "process", proc.Index(), "inherited", len(files) > 0)
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
