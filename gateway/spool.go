package gateway

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"shardgate/config"
	"shardgate/metrics"
)

// spooler creates the spool files of one gateway and accounts for the
// bytes they hold. A spool file has no name: it is created with O_TMPFILE
// (or unlinked right after it is created where the file system lacks
// O_TMPFILE), so a crash, kill -9, a client abort or a backend reset leaves
// nothing on disk. Safe for concurrent use.
type spooler struct {
	inUse   atomic.Int64 // bytes in open spool files
	written [2]atomic.Uint64
	failing atomic.Bool // the last spool attempt failed; logged once per streak
	metrics *metrics.BodyMetrics
	streams map[string]*atomic.Int64 // open streams by upstream; protected by Gateway.mu
}

// streamCounter returns the open-stream count of an upstream, the same one
// across reloads. The caller holds Gateway.mu.
func (sp *spooler) streamCounter(name string) *atomic.Int64 {
	if sp.streams == nil {
		sp.streams = make(map[string]*atomic.Int64)
	}
	c := sp.streams[name]
	if c == nil {
		c = new(atomic.Int64)
		sp.streams[name] = c
	}
	return c
}

const (
	dirResponse = 0
	dirRequest  = 1
)

// spoolFile is one open spool file. Not safe for concurrent use.
type spoolFile struct {
	f    *os.File
	size int64
	sp   *spooler
	dir  int
}

// create opens an empty, nameless spool file in dir.
func (sp *spooler) create(dir string, direction int) (*spoolFile, error) {
	f, err := os.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o600)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		f, err = os.CreateTemp(dir, ".shardgate-spool-")
		if err == nil {
			if rerr := os.Remove(f.Name()); rerr != nil {
				f.Close()
				err = rerr
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("creating spool file in %s: %w", dir, err)
	}
	return &spoolFile{f: f, sp: sp, dir: direction}, nil
}

// Write appends p to the file.
func (s *spoolFile) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.size += int64(n)
	s.sp.inUse.Add(int64(n))
	s.sp.written[s.dir].Add(uint64(n))
	s.sp.metrics.SpoolBytes(int64(n))
	s.sp.metrics.Spooled(s.dir == dirRequest, int64(n))
	return n, err
}

// reader returns a reader of the whole file from its start. Reading must
// not start before writing has ended.
func (s *spoolFile) reader() *io.SectionReader {
	return io.NewSectionReader(s.f, 0, s.size)
}

// Close closes the file, which frees its blocks. It is idempotent.
func (s *spoolFile) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	s.sp.inUse.Add(-s.size)
	s.sp.metrics.SpoolBytes(-s.size)
	return err
}

// checkSpoolDir logs an error when spool files cannot be created in dir:
// the gateway still runs, streaming what it cannot spool and refusing
// request bodies it cannot hold in memory (503).
func (g *Gateway) checkSpoolDir(dir string) {
	if err := config.CheckSpoolDir(dir); err != nil {
		g.log.Error("spool_dir unusable: long responses will hold their backend slot, large uploads get 503",
			"error", err)
	}
}

// SpoolStatus returns the spool figures for the status page.
func (g *Gateway) SpoolStatus() *metrics.SpoolStatus {
	return &metrics.SpoolStatus{
		Bytes:           g.spool.inUse.Load(),
		SpooledRequest:  g.spool.written[dirRequest].Load(),
		SpooledResponse: g.spool.written[dirResponse].Load(),
	}
}
