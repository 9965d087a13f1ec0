package accesslog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// record mirrors one log line as encoding/json sees it.
type record struct {
	Time        string  `json:"time"`
	Client      string  `json:"client"`
	Method      string  `json:"method"`
	Host        string  `json:"host"`
	Path        string  `json:"path"`
	Status      int     `json:"status"`
	Bytes       int64   `json:"bytes"`
	Upstream    string  `json:"upstream"`
	Backend     string  `json:"backend"`
	Shard       int     `json:"shard"`
	QueueWaitMS float64 `json:"queue_wait_ms"`
	BackendMS   float64 `json:"backend_ms"`
	TotalMS     float64 `json:"total_ms"`
	Shed        string  `json:"shed"`
}

// safeBuffer is a bytes.Buffer safe to read while the writer goroutine writes.
type safeBuffer struct {
	mu  sync.Mutex // protects buf
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logLines logs entries through a fresh Writer and returns the output lines.
func logLines(t *testing.T, entries ...*Entry) []string {
	t.Helper()
	var out safeBuffer
	w := New(&out, 16)
	for _, e := range entries {
		w.Log(e)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	s := out.String()
	if !strings.HasSuffix(s, "\n") {
		t.Fatalf("output %q does not end in a newline", s)
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func decode(t *testing.T, line string) record {
	t.Helper()
	if !utf8.ValidString(line) {
		t.Errorf("line is not valid UTF-8: %q", line)
	}
	var r record
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decoding %q: %v", line, err)
	}
	return r
}

func TestEntryFields(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))
	tests := []struct {
		name  string
		entry Entry
		want  record
	}{
		{
			name: "served",
			entry: Entry{Time: at, Client: []byte("192.0.2.7:51234"), Method: []byte("GET"),
				Host: []byte("example.com"), Path: []byte("/api/items?page=2"), Status: 200, Bytes: 5120,
				Upstream: "app", Backend: "127.0.0.1:8001", Shard: 3,
				QueueWait: 1500 * time.Microsecond, BackendTime: 42 * time.Millisecond, Total: 43750 * time.Microsecond},
			want: record{Time: "2025-03-04T04:06:07.123456789Z", Client: "192.0.2.7:51234", Method: "GET",
				Host: "example.com", Path: "/api/items?page=2", Status: 200, Bytes: 5120,
				Upstream: "app", Backend: "127.0.0.1:8001", Shard: 3,
				QueueWaitMS: 1.5, BackendMS: 42, TotalMS: 43.75},
		},
		{
			name: "shed",
			entry: Entry{Time: at, Client: []byte("[2001:db8::1]:443"), Method: []byte("POST"),
				Host: []byte("example.com"), Path: []byte("/checkout"), Status: 503, Bytes: 20,
				Upstream: "app", Shard: 0, QueueWait: 5 * time.Second, Total: 5*time.Second + 200*time.Microsecond,
				Shed: "queue_timeout"},
			want: record{Time: "2025-03-04T04:06:07.123456789Z", Client: "[2001:db8::1]:443", Method: "POST",
				Host: "example.com", Path: "/checkout", Status: 503, Bytes: 20, Upstream: "app",
				QueueWaitMS: 5000, TotalMS: 5000.2, Shed: "queue_timeout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := logLines(t, &tt.entry)
			if len(lines) != 1 {
				t.Fatalf("got %d lines, want 1: %q", len(lines), lines)
			}
			if got := decode(t, lines[0]); got != tt.want {
				t.Errorf("logged %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestZeroTimeMeansNow(t *testing.T) {
	before := time.Now().Add(-time.Second)
	r := decode(t, logLines(t, &Entry{Status: 200})[0])
	got, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil || got.Before(before) || got.After(time.Now().Add(time.Second)) || !strings.HasSuffix(r.Time, "Z") {
		t.Errorf("time = %q (%v), want now in UTC", r.Time, err)
	}
}

func TestHostileInputStaysOneValidLine(t *testing.T) {
	tests := []struct {
		name, path, want string
	}{
		{"quotes and backslash", `/a"b\c`, `/a"b\c`},
		{"newlines", "/a\nb\r\n{\"forged\":1}", "/a\nb\r\n{\"forged\":1}"},
		{"control chars", "/\x00\x01\x1b[31m\x7f", "/\x00\x01\x1b[31m\x7f"},
		{"invalid UTF-8", "/\xff\xfe\xc3(", "/\ufffd\ufffd\ufffd("},
		{"truncated rune", "/caf\xc3", "/caf\ufffd"},
		{"valid UTF-8", "/café/日本", "/café/日本"},
		{"line separators", "/\u2028\u2029", "/\u2028\u2029"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Entry{Method: []byte("GET"), Path: []byte(tt.path), Host: []byte(tt.path), Upstream: tt.path}
			lines := logLines(t, e)
			if len(lines) != 1 {
				t.Fatalf("got %d lines, want 1: %q", len(lines), lines)
			}
			r := decode(t, lines[0])
			if r.Path != tt.want || r.Host != tt.want || r.Upstream != tt.want {
				t.Errorf("path, host, upstream = %q, %q, %q; want %q", r.Path, r.Host, r.Upstream, tt.want)
			}
			if strings.ContainsAny(lines[0], "\u2028\u2029\x7f") {
				t.Errorf("line %q carries a raw U+2028, U+2029 or DEL", lines[0])
			}
		})
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\n\t\x00\x7f", "\xff\xc3(", "é\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendString(nil, []byte(s))
		if !utf8.Valid(out) || bytes.IndexFunc(out, func(r rune) bool { return r < 0x20 }) >= 0 {
			t.Fatalf("appendString(%q) = %q: not valid UTF-8 free of control characters", s, out)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("appendString(%q) = %q: %v", s, out, err)
		}
		var want string // what encoding/json makes of s: each invalid byte becomes U+FFFD
		ref, _ := json.Marshal(s)
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("appendString(%q) decodes to %q, want %q", s, got, want)
		}
	})
}

// blockingWriter blocks every Write until release is closed.
type blockingWriter struct {
	started chan struct{} // closed at the first Write
	once    sync.Once
	release chan struct{}
	out     safeBuffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.started) })
	<-b.release
	return b.out.Write(p)
}

func TestLogDropsInsteadOfBlocking(t *testing.T) {
	bw := &blockingWriter{started: make(chan struct{}), release: make(chan struct{})}
	w := New(bw, 8)
	released := false
	t.Cleanup(func() {
		if !released {
			close(bw.release)
		}
		w.Close()
	})
	e := &Entry{Method: []byte("GET"), Path: []byte("/"), Status: 200}
	w.Log(e)
	<-bw.started // the writer goroutine is now stuck in Write

	logged := 1
	deadline := time.Now().Add(5 * time.Second)
	for w.Dropped() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d Log calls against a stuck writer, Dropped() = 0, want > 0", logged)
		}
		w.Log(e) // would hang here if Log blocked
		logged++
	}
	if logged != 10 {
		t.Errorf("first drop at line %d, want 10 (1 being written + 8 buffered + 1 dropped)", logged)
	}

	close(bw.release)
	released = true
	if err := w.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	written := strings.Count(bw.out.String(), "\n")
	if uint64(written)+w.Dropped() != uint64(logged) {
		t.Errorf("written %d + dropped %d = %d, want the %d lines logged", written, w.Dropped(), uint64(written)+w.Dropped(), logged)
	}
}

func TestCloseFlushesEverythingAccepted(t *testing.T) {
	var out safeBuffer
	w := New(&out, 1024)
	const n = 1000
	for i := range n {
		w.Log(&Entry{Status: 200 + i%100, Path: []byte("/x")})
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	lines := strings.Count(out.String(), "\n")
	if uint64(lines)+w.Dropped() != n || w.Dropped() != 0 {
		t.Errorf("after Close: %d lines written, %d dropped; want %d written, 0 dropped", lines, w.Dropped(), n)
	}
	w.Log(&Entry{})
	if w.Dropped() != 1 {
		t.Errorf("Log after Close: Dropped() = %d, want 1", w.Dropped())
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close() error = %v", err)
	}
}

func TestConcurrentLoggers(t *testing.T) {
	var out safeBuffer
	w := New(&out, 64)
	const goroutines, each = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				w.Log(&Entry{Shard: g, Status: i})
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	lines := 0
	for sc.Scan() {
		decode(t, sc.Text())
		lines++
	}
	if total := uint64(lines) + w.Dropped(); total != goroutines*each {
		t.Errorf("written %d + dropped %d = %d, want %d", lines, w.Dropped(), total, goroutines*each)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorsCountAsDropped(t *testing.T) {
	w := New(failingWriter{}, 4)
	w.Log(&Entry{})
	w.Log(&Entry{})
	err := w.Close()
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close() = %v, want the write error", err)
	}
	if w.Dropped() != 2 {
		t.Errorf("Dropped() = %d, want 2", w.Dropped())
	}
}

func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte("earlier\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := Open(path, 0)
	if err != nil {
		t.Fatalf("Open(%s) error = %v", path, err)
	}
	w.Log(&Entry{Method: []byte("GET"), Status: 204})
	if err := w.Close(); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "earlier" || decode(t, lines[1]).Status != 204 {
		t.Errorf("file = %q, want the earlier line then one entry with status 204", data)
	}

	for _, target := range []string{"", filepath.Join(t.TempDir(), "missing", "dir", "access.log")} {
		if w, err := Open(target, 0); err == nil {
			w.Close()
			t.Errorf("Open(%q) error = nil, want an error", target)
		}
	}
	for _, target := range []string{"stdout", "stderr"} {
		w, err := Open(target, 1)
		if err != nil {
			t.Fatalf("Open(%q) error = %v", target, err)
		}
		if err := w.Close(); err != nil { // must not close the process's stdout/stderr
			t.Errorf("Open(%q).Close() error = %v", target, err)
		}
	}
	if _, err := os.Stdout.Stat(); err != nil {
		t.Errorf("os.Stdout unusable after Close: %v", err)
	}
}

func TestMillis(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.000"},
		{999 * time.Nanosecond, "0.000"},
		{1500 * time.Microsecond, "1.500"},
		{42*time.Millisecond + 7*time.Microsecond, "42.007"},
		{90 * time.Second, "90000.000"},
		{-2500 * time.Microsecond, "-2.500"},
	}
	for _, tt := range tests {
		if got := string(appendMillis(nil, tt.d)); got != tt.want {
			t.Errorf("appendMillis(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
