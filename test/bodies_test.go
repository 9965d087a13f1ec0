package test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"shardgate/internal/wait"
)

// The tests in this file run the gateway in front of one gunicorn with
// gthread workers serving app/bodies.py: large downloads and uploads,
// server-sent events. The app logs what it sent and when (bodiesApp.events).

// bodiesThreads is the gunicorn's thread count, more than the gateway's
// limit for it (bodiesLimit), so that the app would see a break of it.
const (
	bodiesThreads = 16
	bodiesLimit   = 12
)

type bodiesApp struct {
	*gunicornApp
	eventsPath string
}

// appEvent is one line of the app's event log.
type appEvent struct {
	Ev     string  `json:"ev"`
	ID     string  `json:"id"`
	Bytes  int64   `json:"bytes"`
	SHA256 string  `json:"sha256"`
	Seq    int     `json:"seq"`
	T      float64 `json:"t"`
}

func startBodiesApp(t *testing.T) *bodiesApp {
	t.Helper()
	python, appDir := flaskApp(t)
	for attempt := 1; ; attempt++ {
		dir := t.TempDir()
		a := &bodiesApp{
			gunicornApp: &gunicornApp{Addr: closedAddr(t), logPath: filepath.Join(dir, "gunicorn.log"), exited: make(chan struct{})},
			eventsPath:  filepath.Join(dir, "events"),
		}
		a.URL = "http://" + a.Addr
		logFile, err := os.Create(a.logPath)
		if err != nil {
			t.Fatalf("creating gunicorn log: %v", err)
		}
		a.cmd = exec.Command(python, "-m", "gunicorn", "-k", "gthread", "-w", "1",
			"--threads", strconv.Itoa(bodiesThreads), "--timeout", "120", "--chdir", appDir, "-b", a.Addr,
			"--graceful-timeout", "2", "bodies:app")
		a.cmd.Env = append(os.Environ(), "APP_EVENTS="+a.eventsPath, "PYTHONDONTWRITEBYTECODE=1")
		a.cmd.Stdout, a.cmd.Stderr = logFile, logFile
		a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // see kill
		err = a.cmd.Start()
		logFile.Close()
		if err != nil {
			t.Fatalf("starting gunicorn: %v", err)
		}
		go func() {
			_ = a.cmd.Wait()
			close(a.exited)
		}()
		t.Cleanup(func() { a.stop(t) })
		err = a.waitUpAt("/", 20*time.Second)
		if err == nil {
			return a
		}
		if attempt == 3 {
			t.Fatalf("gunicorn on %s: %v; log:\n%s", a.Addr, err, a.log())
		}
		a.stop(t)
	}
}

// events returns the app's events so far.
func (a *bodiesApp) events(t *testing.T) []appEvent {
	t.Helper()
	b, err := os.ReadFile(a.eventsPath)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading app events: %v", err)
	}
	var out []appEvent
	// Only whole lines: the app may be writing the last one.
	whole := string(b[:bytes.LastIndexByte(b, '\n')+1])
	for line := range strings.SplitSeq(strings.TrimSpace(whole), "\n") {
		if line == "" {
			continue
		}
		var e appEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("app event %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// waitEvent waits for the first event named ev for id: the app logs it
// after its last write, which the client may see first.
func (a *bodiesApp) waitEvent(t *testing.T, ev, id string) (appEvent, bool) {
	t.Helper()
	var e appEvent
	var ok bool
	deadline := time.Now().Add(10 * time.Second)
	for {
		if e, ok = a.event(t, ev, id); ok || time.Now().After(deadline) {
			return e, ok
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// event returns the first event named ev for id, if any.
func (a *bodiesApp) event(t *testing.T, ev, id string) (appEvent, bool) {
	t.Helper()
	for _, e := range a.events(t) {
		if e.Ev == ev && e.ID == id {
			return e, true
		}
	}
	return appEvent{}, false
}

// bodiesConfig is a gateway config for the app with spool_dir spool,
// server holding more server keys; a route for host "stream.test" has
// buffering: false.
func bodiesConfig(a *bodiesApp, spool, server string) string {
	return loopbackListeners + fmt.Sprintf(`server:
  spool_dir: %q
%supstreams:
  app:
    response_timeout: 10s
    backends:
      - address: %q
        max_inflight: %d
routes:
  - upstream: app
  - host: stream.test
    upstream: app
    buffering: false
`, spool, server, a.Addr, bodiesLimit)
}

// unixNow is the time in seconds, like Python's time.time().
func unixNow() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// checkIdle waits until the gateway holds no slot, no stream and no spool
// bytes, and the spool directory is empty.
func checkIdle(t *testing.T, g *Gateway, spool string) {
	t.Helper()
	wait.For(t, "no slot, stream or spool bytes in use", func() bool {
		m := parseMetrics(t, g.Metrics(t))
		inflight, _ := m.value("shardgate_upstream_inflight", map[string]string{"upstream": "app"})
		streams, _ := m.value("shardgate_streams_open", map[string]string{"upstream": "app"})
		spooled, _ := m.value("shardgate_spool_bytes", nil)
		return inflight == 0 && streams == 0 && spooled == 0
	})
	entries, err := os.ReadDir(spool)
	if err != nil {
		t.Fatalf("reading spool_dir: %v", err)
	}
	if len(entries) != 0 {
		t.Errorf("spool_dir holds %d entries after the test, want none", len(entries))
	}
}

// TestStreamEventsArriveAsSent: every event of a stream reaches the client
// within 50 ms of the app writing it, for an event stream, for
// X-Accel-Buffering: no (which is not forwarded) and on a route with
// buffering: false.
func TestStreamEventsArriveAsSent(t *testing.T) {
	a := startBodiesApp(t)
	spool := t.TempDir()
	g := StartGateway(t, bodiesConfig(a, spool, ""))
	tests := []struct{ name, host, query string }{
		{"event-stream", "", "type=sse"},
		{"x-accel-buffering", "", "type=xab"},
		{"buffering-false", "stream.test", "type=plain"},
		{"with-length", "", "length=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", g.URL+"/sse?n=6&interval=0.2&id="+tt.name+"&"+tt.query, nil)
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("GET /sse: %v", err)
			}
			defer resp.Body.Close()
			if v := resp.Header.Get("X-Accel-Buffering"); v != "" {
				t.Errorf("X-Accel-Buffering = %q reached the client, want it dropped", v)
			}
			sc := bufio.NewScanner(resp.Body)
			events := 0
			for sc.Scan() {
				data, ok := strings.CutPrefix(sc.Text(), "data: ")
				if !ok {
					continue
				}
				arrived := unixNow()
				var ev struct {
					Seq  int
					Sent float64
				}
				if err := json.Unmarshal([]byte(data), &ev); err != nil {
					t.Fatalf("event %q: %v", data, err)
				}
				if lag := arrived - ev.Sent; lag > 0.050 {
					t.Errorf("event %d arrived %.0f ms after the app sent it, want ≤ 50 ms", ev.Seq, lag*1000)
				}
				events++
			}
			if err := sc.Err(); err != nil {
				t.Fatalf("reading the stream: %v", err)
			}
			if events != 6 {
				t.Errorf("got %d events, want 6", events)
			}
		})
	}
	checkIdle(t, g, spool)
}

// TestStreamClientCloseFreesWorker: a client that closes an endless event
// stream frees the backend worker within a second: the app sees its write
// fail, and the slot and stream gauges go back to 0.
func TestStreamClientCloseFreesWorker(t *testing.T) {
	a := startBodiesApp(t)
	spool := t.TempDir()
	g := StartGateway(t, bodiesConfig(a, spool, ""))
	resp, err := http.Get(g.URL + "/sse?n=0&interval=0.1&id=endless")
	if err != nil {
		t.Fatalf("GET /sse: %v", err)
	}
	br := bufio.NewReader(resp.Body)
	for range 3 {
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
	}
	m := parseMetrics(t, g.Metrics(t))
	if n, _ := m.value("shardgate_streams_open", map[string]string{"upstream": "app"}); n != 1 {
		t.Errorf("shardgate_streams_open = %v while streaming, want 1", n)
	}
	code, status := get(t, g.AdminURL+"/status?format=json")
	var snap struct {
		Upstreams []struct {
			Streams int `json:"streams_open"`
		}
		Spool *struct{ Bytes int64 }
	}
	if err := json.Unmarshal([]byte(status), &snap); err != nil || code != 200 || len(snap.Upstreams) != 1 {
		t.Fatalf("GET /status?format=json = %d %q, %v", code, status, err)
	}
	if snap.Upstreams[0].Streams != 1 || snap.Spool == nil {
		t.Errorf("status page: streams_open %d, spool %v; want 1 open stream and the spool figures", snap.Upstreams[0].Streams, snap.Spool)
	}
	closed := unixNow()
	resp.Body.Close()
	wait.For(t, "the app to see the stream closed", func() bool {
		_, ok := a.event(t, "sse_closed", "endless")
		return ok
	})
	e, _ := a.event(t, "sse_closed", "endless")
	if took := e.T - closed; took > 1 {
		t.Errorf("the app saw the close %.2f s after the client closed, want ≤ 1 s", took)
	}
	wait.For(t, "the closed stream to be counted as the client's abort", func() bool {
		v, _ := parseMetrics(t, g.Metrics(t)).value("shardgate_requests_total", map[string]string{"upstream": "app", "code": "499"})
		return v == 1
	})
	checkIdle(t, g, spool)
}

// slowRead reads body at about rate bytes per second, hashing it.
func slowRead(body io.Reader, rate int) (int64, string, error) {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	start := time.Now()
	var n int64
	for {
		k, err := body.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if rate > 0 {
			if ahead := time.Duration(float64(n)/float64(rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		if err == io.EOF {
			return n, hex.EncodeToString(h.Sum(nil)), nil
		}
		if err != nil {
			return n, hex.EncodeToString(h.Sum(nil)), err
		}
	}
}

// procStatusKiB returns a field of /proc/PID/status in KiB.
func procStatusKiB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading status of %d: %v", pid, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", field, v, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

type download struct {
	id          string
	bytes       int64
	sha         string
	err         error
	status      int
	start, done float64 // unixNow when the client asked, and had it all
}

// smallBufClient reads through a 64 KiB socket receive buffer, so that the
// kernel holds little of a paced download on the client's side.
var smallBufClient = &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
	Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
		})
	},
}).DialContext}}

func fetch(url, host string, rate int) download {
	d := download{start: unixNow()}
	req, _ := http.NewRequest("GET", url, nil)
	if host != "" {
		req.Host = host
	}
	client := http.DefaultClient
	if rate > 0 {
		client = smallBufClient
	}
	resp, err := client.Do(req)
	if err != nil {
		d.err = err
		return d
	}
	defer resp.Body.Close()
	d.status = resp.StatusCode
	d.bytes, d.sha, d.err = slowRead(resp.Body, rate)
	d.done = unixNow()
	return d
}

// TestSpoolLargeDownloads: a 300 MB download, then ten 100 MB downloads at
// once by clients reading at 10 MB/s, through the default buffers: every
// byte arrives (sha256 as the app sent it), the gateway's peak RSS stays
// within 64 MiB of its idle RSS, and the app finished sending each long
// before its client finished reading.
func TestSpoolLargeDownloads(t *testing.T) {
	a := startBodiesApp(t)
	spool := t.TempDir()
	g := StartGateway(t, bodiesConfig(a, spool, ""))
	if code, _ := get(t, g.URL+"/"); code != 200 {
		t.Fatalf("GET / = %d, want 200", code)
	}
	idle := procStatusKiB(t, g.Pid(), "VmRSS")

	check := func(d download, size int64) {
		t.Helper()
		if d.err != nil || d.status != 200 || d.bytes != size {
			t.Fatalf("download %s: status %d, %d bytes, error %v; want 200, %d bytes", d.id, d.status, d.bytes, d.err, size)
		}
		e, ok := a.waitEvent(t, "download_done", d.id)
		if !ok {
			t.Fatalf("download %s: the app logged no download_done", d.id)
		}
		if e.SHA256 != d.sha {
			t.Errorf("download %s: sha256 %s, the app sent %s", d.id, d.sha, e.SHA256)
		}
	}
	const big = 300_000_000
	d := fetch(g.URL+"/download?size=300000000&id=big", "", 0)
	d.id = "big"
	check(d, big)

	const n, size, rate = 10, 100_000_000, 10_000_000
	var wg sync.WaitGroup
	ds := make([]download, n)
	for i := range ds {
		wg.Go(func() {
			id := "slow" + strconv.Itoa(i)
			chunked := ""
			if i%2 == 1 {
				chunked = "&chunked=1"
			}
			ds[i] = fetch(g.URL+"/download?size=100000000&id="+id+chunked, "", rate)
			ds[i].id = id
		})
	}
	wg.Wait()
	for _, d := range ds {
		check(d, size)
		e, _ := a.waitEvent(t, "download_done", d.id)
		if lead := d.done - e.T; lead < 3 {
			t.Errorf("download %s: the app finished %.1f s before the client, want the backend freed long before (≥ 3 s)", d.id, lead)
		}
	}
	peak := procStatusKiB(t, g.Pid(), "VmHWM")
	t.Logf("gateway RSS: idle %d KiB, peak %d KiB", idle, peak)
	if peak-idle > 64<<10 {
		t.Errorf("peak RSS %d KiB is %d KiB above idle RSS %d KiB, want ≤ 64 MiB", peak, peak-idle, idle)
	}
	m := parseMetrics(t, g.Metrics(t))
	if v, _ := m.value("shardgate_spooled_bytes_total", map[string]string{"direction": "response"}); v < big+n*size-(n+1)*(64<<10) {
		t.Errorf("shardgate_spooled_bytes_total{direction=response} = %v, want about %d", v, big+n*size)
	}
	checkIdle(t, g, spool)
}

// TestStreamBufferingFalseHoldsSlot: on a route with buffering: false a
// download streams, holding the backend slot: the app finishes with its
// slow client, not before.
func TestStreamBufferingFalseHoldsSlot(t *testing.T) {
	a := startBodiesApp(t)
	spool := t.TempDir()
	g := StartGateway(t, bodiesConfig(a, spool, ""))
	d := fetch(g.URL+"/download?size=30000000&id=unbuffered", "stream.test", 10_000_000)
	if d.err != nil || d.bytes != 30_000_000 {
		t.Fatalf("download: %d bytes, error %v; want 30000000", d.bytes, d.err)
	}
	e, ok := a.waitEvent(t, "download_done", "unbuffered")
	if !ok || e.SHA256 != d.sha {
		t.Fatalf("app event %+v (found %v), want download_done with sha256 %s", e, ok, d.sha)
	}
	// Socket buffers hold some of it; spooled, the app would finish at once.
	if lead, took := d.done-e.T, d.done-d.start; lead > took/2 {
		t.Errorf("the app finished %.1f s before its client, which took %.1f s, on an unbuffered route; want it paced by the client", lead, took)
	}
	m := parseMetrics(t, g.Metrics(t))
	if v, _ := m.value("shardgate_spooled_bytes_total", map[string]string{"direction": "response"}); v != 0 {
		t.Errorf("shardgate_spooled_bytes_total{direction=response} = %v on an unbuffered route, want 0", v)
	}
	checkIdle(t, g, spool)
}

// genBody is n bytes of deterministic noise that hashes itself as it is
// read; rate > 0 paces it to about rate bytes per second.
type genBody struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	rate  int
	read  int64
	start time.Time
}

func newGenBody(n int64, rate int) *genBody {
	return &genBody{r: io.LimitReader(rand.NewChaCha8([32]byte{7}), n), h: sha256.New(), n: n, rate: rate}
}

func (b *genBody) Read(p []byte) (int, error) {
	if b.start.IsZero() {
		b.start = time.Now()
	}
	if b.rate > 0 {
		p = p[:min(len(p), b.rate/20)]
		if ahead := time.Duration(float64(b.read)/float64(b.rate)*float64(time.Second)) - time.Since(b.start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	n, err := b.r.Read(p)
	b.h.Write(p[:n])
	b.read += int64(n)
	return n, err
}

func (b *genBody) sum() string { return hex.EncodeToString(b.h.Sum(nil)) }

type uploadResult struct {
	Bytes        int64  `json:"bytes"`
	SHA256       string `json:"sha256"`
	LengthHeader string `json:"length_header"`
	Chunked      bool   `json:"chunked"`
	status       int
	err          error
}

// upload POSTs body to url; chunked sends it without Content-Length.
func upload(url string, body *genBody, chunked bool) uploadResult {
	var r io.Reader = body
	req, _ := http.NewRequest("POST", url, r)
	if !chunked {
		req.ContentLength = body.n
	} else {
		req.ContentLength = -1
	}
	var out uploadResult
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		out.err = err
		return out
	}
	defer resp.Body.Close()
	out.status = resp.StatusCode
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		out.err = json.Unmarshal(raw, &out)
	}
	return out
}

// TestSpoolLargeUpload: a 1 GiB upload with max_body_bytes: 2GiB arrives at
// the app byte-exact with the gateway's peak RSS within 64 MiB of idle; a
// chunked upload reaches the app de-chunked, with Content-Length; a body
// over max_body_bytes gets 413 and never reaches the app.
func TestSpoolLargeUpload(t *testing.T) {
	a := startBodiesApp(t)
	spool := t.TempDir()
	g := StartGateway(t, bodiesConfig(a, spool, "  max_body_bytes: 2GiB\n"))
	if code, _ := get(t, g.URL+"/"); code != 200 {
		t.Fatalf("GET / = %d, want 200", code)
	}
	idle := procStatusKiB(t, g.Pid(), "VmRSS")

	const size = 1 << 30
	body := newGenBody(size, 0)
	res := upload(g.URL+"/upload?id=big", body, false)
	if res.err != nil || res.status != 200 || res.Bytes != size || res.SHA256 != body.sum() {
		t.Fatalf("1 GiB upload: status %d, app got %d bytes sha256 %s, error %v; want 200, %d bytes sha256 %s",
			res.status, res.Bytes, res.SHA256, res.err, size, body.sum())
	}
	peak := procStatusKiB(t, g.Pid(), "VmHWM")
	t.Logf("gateway RSS: idle %d KiB, peak %d KiB", idle, peak)
	if peak-idle > 64<<10 {
		t.Errorf("peak RSS %d KiB is %d KiB above idle RSS %d KiB, want ≤ 64 MiB", peak, peak-idle, idle)
	}

	chunkedBody := newGenBody(20<<20, 0)
	res = upload(g.URL+"/upload?id=chunked", chunkedBody, true)
	if res.err != nil || res.status != 200 || res.SHA256 != chunkedBody.sum() {
		t.Fatalf("chunked upload: status %d, sha256 %s, error %v; want 200, sha256 %s", res.status, res.SHA256, res.err, chunkedBody.sum())
	}
	if res.Chunked || res.LengthHeader != strconv.Itoa(20<<20) {
		t.Errorf("chunked upload reached the app with chunked=%v Content-Length %q, want Content-Length %d", res.Chunked, res.LengthHeader, 20<<20)
	}

	m := parseMetrics(t, g.Metrics(t))
	if v, _ := m.value("shardgate_spooled_bytes_total", map[string]string{"direction": "request"}); v != size+20<<20 {
		t.Errorf("shardgate_spooled_bytes_total{direction=request} = %v, want %d", v, size+20<<20)
	}
	checkIdle(t, g, spool)
}

// TestSlowTransfersWithShortTimeouts: with read_timeout and write_timeout
// at 1 s, an upload and a download that each take about three times that
// at a steady rate complete byte-exact; a client that stops reading is cut
// after write_timeout, and the access log records the response as aborted.
func TestSlowTransfersWithShortTimeouts(t *testing.T) {
	a := startBodiesApp(t)
	spool := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "access.log")
	cfg := bodiesConfig(a, spool, "  read_timeout: 1s\n  write_timeout: 1s\n  min_rate: 1KiB/s\n") +
		fmt.Sprintf("log:\n  access_log: %q\n", logPath)
	g := StartGateway(t, cfg)

	t.Run("upload", func(t *testing.T) {
		body := newGenBody(1_500_000, 500_000)
		start := time.Now()
		res := upload(g.URL+"/upload?id=slow", body, false)
		if res.err != nil || res.status != 200 || res.SHA256 != body.sum() {
			t.Fatalf("slow upload: status %d, sha256 %s, error %v; want 200, sha256 %s", res.status, res.SHA256, res.err, body.sum())
		}
		if took := time.Since(start); took < 2500*time.Millisecond {
			t.Fatalf("upload took %v, want it slower than the timeouts", took)
		}
	})
	t.Run("download", func(t *testing.T) {
		start := time.Now()
		d := fetch(g.URL+"/download?size=6000000&id=slowdl", "", 2_000_000)
		if d.err != nil || d.status != 200 || d.bytes != 6_000_000 {
			t.Fatalf("slow download: status %d, %d bytes, error %v; want 200, 6000000", d.status, d.bytes, d.err)
		}
		if e, ok := a.waitEvent(t, "download_done", "slowdl"); !ok || e.SHA256 != d.sha {
			t.Fatalf("slow download sha256 %s, app event %+v", d.sha, e)
		}
		if took := time.Since(start); took < 2500*time.Millisecond {
			t.Fatalf("download took %v, want it slower than the timeouts", took)
		}
	})
	t.Run("stalled-reader", func(t *testing.T) {
		c, err := net.Dial("tcp", g.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
		fmt.Fprintf(c, "GET /download?size=50000000&id=stalled HTTP/1.1\r\nHost: x\r\n\r\n")
		start := time.Now()
		var entry map[string]any
		wait.For(t, "the access log line of the stalled download", func() bool {
			b, _ := os.ReadFile(logPath)
			for line := range strings.SplitSeq(string(b), "\n") {
				if strings.Contains(line, "id=stalled") && json.Unmarshal([]byte(line), &entry) == nil {
					return true
				}
			}
			return false
		})
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("stalled reader cut after %v, want about write_timeout (1s)", took)
		}
		if entry["aborted"] != "timeout" || entry["status"] != float64(200) {
			t.Errorf("access log: status %v aborted %v, want 200 with aborted=timeout", entry["status"], entry["aborted"])
		}
		if b, _ := entry["bytes"].(float64); b >= 50_000_000 {
			t.Errorf("access log: bytes %v for a cut response, want fewer than 50000000", b)
		}
		m := parseMetrics(t, g.Metrics(t))
		if v, _ := m.value("shardgate_requests_total", map[string]string{"upstream": "app", "code": "499"}); v != 1 {
			t.Errorf(`shardgate_requests_total{code="499"} = %v, want 1 (the cut download)`, v)
		}
	})
	checkIdle(t, g, spool)
}

// kill kills gunicorn and its workers at once, as a crash would.
func (a *bodiesApp) kill(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("killing gunicorn: %v", err)
	}
	<-a.exited
}

// TestAbortsLeaveNothing: a client that leaves mid-download and a backend
// killed mid-response (while spooled, and while streamed) leave no spool
// file and no slot in use; each is counted as what the client got.
func TestAbortsLeaveNothing(t *testing.T) {
	spool := t.TempDir()
	t.Run("client-leaves", func(t *testing.T) {
		a := startBodiesApp(t)
		g := StartGateway(t, bodiesConfig(a, spool, ""))
		resp, err := http.Get(g.URL + "/download?size=100000000&id=leaver")
		if err != nil {
			t.Fatalf("GET /download: %v", err)
		}
		if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
			t.Fatalf("reading the download: %v", err)
		}
		resp.Body.Close()
		wait.For(t, "the cut download to be counted", func() bool {
			m := parseMetrics(t, g.Metrics(t))
			v, _ := m.value("shardgate_requests_total", map[string]string{"upstream": "app", "code": "499"})
			return v == 1
		})
		checkIdle(t, g, spool)
	})
	t.Run("backend-killed-while-spooling", func(t *testing.T) {
		a := startBodiesApp(t)
		g := StartGateway(t, bodiesConfig(a, spool, ""))
		got := make(chan download, 1)
		go func() { got <- fetch(g.URL+"/download?size=100000000&delay=0.02&id=killed", "", 0) }()
		wait.For(t, "the gateway to spool", func() bool {
			v, _ := parseMetrics(t, g.Metrics(t)).value("shardgate_spool_bytes", nil)
			return v > 4<<20
		})
		a.kill(t)
		if d := <-got; d.err == nil {
			t.Errorf("download from a backend killed mid-response: %d bytes, status %d, no error; want it cut", d.bytes, d.status)
		}
		wait.For(t, "the cut download to be counted", func() bool {
			v, _ := parseMetrics(t, g.Metrics(t)).value("shardgate_requests_total", map[string]string{"upstream": "app", "code": "502"})
			return v == 1
		})
		checkIdle(t, g, spool)
	})
	t.Run("backend-killed-while-streaming", func(t *testing.T) {
		a := startBodiesApp(t)
		g := StartGateway(t, bodiesConfig(a, spool, ""))
		req, _ := http.NewRequest("GET", g.URL+"/download?size=100000000&delay=0.02&id=killed", nil)
		req.Host = "stream.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /download: %v", err)
		}
		defer resp.Body.Close()
		if _, err := io.ReadFull(resp.Body, make([]byte, 4<<20)); err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		a.kill(t)
		if n, err := io.Copy(io.Discard, resp.Body); err == nil {
			t.Errorf("stream from a killed backend ended cleanly after %d more bytes, want an error", n)
		}
		wait.For(t, "the cut stream to be counted", func() bool {
			v, _ := parseMetrics(t, g.Metrics(t)).value("shardgate_requests_total", map[string]string{"upstream": "app", "code": "502"})
			return v == 1
		})
		checkIdle(t, g, spool)
	})
}

// TestSpoolLimits: past max_spool_bytes a response streams from the backend
// with its slot held; with spool_dir gone, responses stream (the slot held)
// and large uploads get 503, while small ones still pass.
func TestSpoolLimits(t *testing.T) {
	a := startBodiesApp(t)
	t.Run("max_spool_bytes", func(t *testing.T) {
		spool := t.TempDir()
		g := StartGateway(t, bodiesConfig(a, spool, "  max_spool_bytes: 1MiB\n"))
		d := fetch(g.URL+"/download?size=30000000&id=overspool", "", 10_000_000)
		e, ok := a.waitEvent(t, "download_done", "overspool")
		if d.err != nil || d.bytes != 30_000_000 || !ok || e.SHA256 != d.sha {
			t.Fatalf("download past max_spool_bytes: %d bytes, error %v, app event %+v", d.bytes, d.err, e)
		}
		if lead, took := d.done-e.T, d.done-d.start; lead > took/2 {
			t.Errorf("the app finished %.1f s before its client, which took %.1f s; want the rest past max_spool_bytes paced by the client", lead, took)
		}
		m := parseMetrics(t, g.Metrics(t))
		if v, _ := m.value("shardgate_spooled_bytes_total", map[string]string{"direction": "response"}); v != 1<<20 {
			t.Errorf("shardgate_spooled_bytes_total{direction=response} = %v, want %d (max_spool_bytes)", v, 1<<20)
		}
		checkIdle(t, g, spool)
	})
	t.Run("spool_dir-gone", func(t *testing.T) {
		spool := filepath.Join(t.TempDir(), "spool")
		if err := os.Mkdir(spool, 0o700); err != nil {
			t.Fatal(err)
		}
		g := StartGateway(t, bodiesConfig(a, spool, ""))
		if err := os.Remove(spool); err != nil {
			t.Fatal(err)
		}
		d := fetch(g.URL+"/download?size=5000000&id=nospool", "", 0)
		if e, ok := a.waitEvent(t, "download_done", "nospool"); d.err != nil || d.bytes != 5_000_000 || !ok || e.SHA256 != d.sha {
			t.Fatalf("download without spool_dir: %d bytes, error %v, app event %+v", d.bytes, d.err, e)
		}
		if res := upload(g.URL+"/upload?id=nospool", newGenBody(1<<20, 0), false); res.status != http.StatusServiceUnavailable {
			t.Errorf("1 MiB upload without spool_dir: status %d, want 503", res.status)
		}
		if res := upload(g.URL+"/upload?id=small", newGenBody(1000, 0), false); res.status != 200 || res.Bytes != 1000 {
			t.Errorf("small upload without spool_dir: status %d, %d bytes, want 200 with 1000", res.status, res.Bytes)
		}
		g.WaitForLog(t, "cannot spool", 5*time.Second)
		os.Mkdir(spool, 0o700) // for checkIdle
		checkIdle(t, g, spool)
	})
}

// TestSpoolHTTP10GetsLength: an HTTP/1.0 client cannot read chunked
// framing, so a long chunked response reaches it spooled whole, with
// Content-Length.
func TestSpoolHTTP10GetsLength(t *testing.T) {
	a := startBodiesApp(t)
	spool := t.TempDir()
	g := StartGateway(t, bodiesConfig(a, spool, ""))
	c, err := net.Dial("tcp", g.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /download?size=3000000&chunked=1&id=old HTTP/1.0\r\nHost: x\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	n, sha, err := slowRead(resp.Body, 0)
	if err != nil || resp.ContentLength != 3_000_000 || len(resp.TransferEncoding) != 0 || n != 3_000_000 {
		t.Fatalf("HTTP/1.0 download: Content-Length %d, Transfer-Encoding %v, %d bytes, error %v; want 3000000 bytes framed by Content-Length",
			resp.ContentLength, resp.TransferEncoding, n, err)
	}
	if e, ok := a.waitEvent(t, "download_done", "old"); !ok || e.SHA256 != sha {
		t.Errorf("sha256 %s, app event %+v", sha, e)
	}
	checkIdle(t, g, spool)
}
