package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Bodies configures how request and response bodies are held, and the
// timeouts of long transfers. Its keys sit directly under server.
type Bodies struct {
	// HeaderTimeout bounds reading a request's whole header block, from
	// its first byte (YAML key header_timeout). Default 10s; must be > 0.
	// A ReadTimeout below it bounds the header block instead. The body is
	// bounded by ReadTimeout per read and by MinRate.
	HeaderTimeout time.Duration
	// MinRate is the slowest a client may send a request body or take a
	// buffered response, in bytes per second averaged over 10 seconds
	// (YAML key min_rate, a size with an optional "/s": "1KiB/s"). Default
	// 1 KiB/s; 0 turns the check off, leaving the per-read timeouts.
	MinRate int
	// ResponseBufferBytes is the longest response body held in memory; a
	// longer one continues into a spool file (YAML key
	// response_buffer_bytes, a size). Default 64 KiB; must be between
	// 4 KiB and 64 MiB.
	ResponseBufferBytes int
	// RequestBufferBytes is the longest request body held in memory; a
	// longer one is spooled (YAML key request_buffer_bytes, a size).
	// Default 64 KiB; must be between 4 KiB and 64 MiB.
	RequestBufferBytes int
	// SpoolDir is the directory of the spool files (YAML key spool_dir, an
	// absolute path). Default $TMPDIR, else /tmp. Spool files are unlinked
	// as they are created, so nothing is ever left in it.
	SpoolDir string
	// MaxSpoolBytes is the most of one response spooled to disk; a longer
	// one is streamed from there on, holding its backend slot (YAML key
	// max_spool_bytes, a size). Default 1 GiB; 0 spools nothing, so that
	// every response longer than ResponseBufferBytes streams.
	MaxSpoolBytes int
}

func defaultBodies() Bodies {
	dir := os.Getenv("TMPDIR")
	if dir == "" || !filepath.IsAbs(dir) {
		dir = "/tmp"
	}
	return Bodies{
		HeaderTimeout:       10 * time.Second,
		MinRate:             1 << 10,
		ResponseBufferBytes: 64 << 10,
		RequestBufferBytes:  64 << 10,
		SpoolDir:            filepath.Clean(dir),
		MaxSpoolBytes:       1 << 30,
	}
}

func bufferBytes(v int) string {
	if v < 4<<10 || v > 64<<20 {
		return "must be between 4KiB and 64MiB"
	}
	return ""
}

func spoolDir(v string) string {
	if !filepath.IsAbs(v) {
		return fmt.Sprintf("must be an absolute path, got %q", v)
	}
	return ""
}

// CheckSpoolDir reports whether a spool file can be created in dir, as an
// *Error naming server.spool_dir.
func CheckSpoolDir(dir string) error {
	f, err := os.CreateTemp(dir, ".shardgate-check-")
	if err != nil {
		return &Error{Path: "server.spool_dir", Msg: fmt.Sprintf("not writable: %v", err)}
	}
	name := f.Name()
	_, werr := f.Write([]byte("x"))
	f.Close()
	os.Remove(name)
	if werr != nil {
		return &Error{Path: "server.spool_dir", Msg: fmt.Sprintf("not writable: %v", werr)}
	}
	return nil
}

// rate decodes bytes per second: a size, optionally followed by "/s".
func (d *decoder) rate(dst *int) handler {
	return field(d, dst, "a rate", func(n *yaml.Node) (int, error) {
		v, err := parseSize(strings.TrimSuffix(n.Value, "/s"))
		if err != nil {
			return 0, fmt.Errorf("not a rate: %q: want bytes per second, like \"1KiB/s\"", n.Value)
		}
		return v, nil
	})
}
