package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseBodyErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"min_rate not a rate", "server:\n  min_rate: fast\n" + minimal,
			`server.min_rate: not a rate: "fast": want bytes per second, like "1KiB/s" (line 2)`},
		{"response buffer too small", "server:\n  response_buffer_bytes: 1KiB\n" + minimal,
			"server.response_buffer_bytes: must be between 4KiB and 64MiB (line 2)"},
		{"request buffer too large", "server:\n  request_buffer_bytes: 1GiB\n" + minimal,
			"server.request_buffer_bytes: must be between 4KiB and 64MiB (line 2)"},
		{"spool_dir relative", "server:\n  spool_dir: spool\n" + minimal,
			`server.spool_dir: must be an absolute path, got "spool" (line 2)`},
		{"max_spool_bytes negative", "server:\n  max_spool_bytes: -1\n" + minimal,
			`server.max_spool_bytes: not a size: "-1": must not be negative (line 2)`},
		{"header_timeout zero", "server:\n  header_timeout: 0s\n" + minimal,
			"server.header_timeout: must be > 0 (line 2)"},
		{"buffering not a boolean", minimal + "  - {path_prefix: /sse, upstream: app, buffering: sometimes}\n",
			`routes[1].buffering: not a boolean: "sometimes": want true or false (line 7)`},
		{"route response_timeout zero", minimal + "  - {path_prefix: /sse, upstream: app, response_timeout: 0s}\n",
			"routes[1].response_timeout: must be > 0 (line 7)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.src))
			if err == nil {
				t.Fatalf("Parse() = %+v, nil; want error %q", c, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Parse() error =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestParseBodies(t *testing.T) {
	c := mustParse(t, "server:\n  min_rate: 2KiB/s\n  response_buffer_bytes: 128KiB\n  request_buffer_bytes: 8KiB\n"+
		"  spool_dir: /var/tmp\n  max_spool_bytes: 0\n  header_timeout: 5s\n  max_body_bytes: 2GiB\n"+
		minimal+"  - {path_prefix: /sse, upstream: app, buffering: false, response_timeout: 1h}\n")
	want := Bodies{HeaderTimeout: 5 * time.Second, MinRate: 2 << 10, ResponseBufferBytes: 128 << 10,
		RequestBufferBytes: 8 << 10, SpoolDir: "/var/tmp", MaxSpoolBytes: 0}
	if c.Server.Bodies != want {
		t.Errorf("Server.Bodies = %+v, want %+v", c.Server.Bodies, want)
	}
	if c.Server.MaxBodyBytes != 2<<30 {
		t.Errorf("MaxBodyBytes = %d, want 2GiB", c.Server.MaxBodyBytes)
	}
	if r := c.Routes[1]; r.Buffering || r.ResponseTimeout != time.Hour {
		t.Errorf("Routes[1] = %+v, want buffering false, response_timeout 1h", r)
	}
	if !c.Routes[0].Buffering {
		t.Errorf("Routes[0].Buffering = false, want the default true")
	}
}

func TestCheckSpoolDir(t *testing.T) {
	if err := CheckSpoolDir(t.TempDir()); err != nil {
		t.Errorf("CheckSpoolDir(writable) = %v, want nil", err)
	}
	if err := CheckSpoolDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Errorf("CheckSpoolDir(missing) = nil, want an error")
	}
	dir := t.TempDir()
	CheckSpoolDir(dir)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("CheckSpoolDir left %d files behind", len(entries))
	}
}
