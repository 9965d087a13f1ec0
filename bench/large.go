package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The large-body scenario runs outside wrk: -large-clients clients at once
// each download -large-mb MB from a gunicorn gthread backend reading at
// -large-rate MB/s, then as many upload as much at that rate. It measures
// the clients' throughput, the proxy's peak RSS, and how long the app's
// worker was held per transfer (from the app's own log: a proxy that
// buffers frees it long before its slow client finishes).

const largeName = "large"

// largeResult is one proxy's run of the large scenario.
type largeResult struct {
	proxy            string
	dlMBps, ulMBps   float64 // all clients together
	dlHeld, ulHeld   float64 // median seconds the app's worker was held per transfer
	dlClient, ulTook float64 // median seconds a client took
	rssMiB           float64
	measured         bool
	errors           int
	failure          string
}

func (r *runner) runLarge(ctx context.Context) []largeResult {
	dir := filepath.Join(r.work, largeName)
	var out []largeResult
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return []largeResult{{proxy: "all", failure: err.Error()}}
	}
	ports, err := freePorts(1)
	if err != nil {
		return []largeResult{{proxy: "all", failure: err.Error()}}
	}
	addr := hostPort(ports[0])
	events := filepath.Join(dir, "events")
	app, err := r.sup.start("large-app", filepath.Join(dir, "gunicorn.log"), []string{"BENCH_EVENTS=" + events},
		gunicornPath, "-k", "gthread", "-w", "1", "--threads", "32", "-b", addr,
		"--chdir", filepath.Join(r.root, "bench", "app"), "--timeout", "120", "large:app")
	if err != nil {
		return []largeResult{{proxy: "all", failure: err.Error()}}
	}
	defer r.sup.stop(app, 10*time.Second)
	if err := waitHTTP(ctx, app, "http://"+addr+"/", 30*time.Second); err != nil {
		return []largeResult{{proxy: "all", failure: err.Error()}}
	}
	for _, p := range r.opts.proxies {
		if ctx.Err() != nil {
			break
		}
		res := r.largeOne(ctx, p, addr, events, filepath.Join(dir, p))
		res.proxy = p
		fmt.Fprintf(os.Stderr, "[large] %-9s %s\n", p, largeLine(res))
		out = append(out, res)
	}
	return out
}

func (r *runner) largeOne(ctx context.Context, p, backend, events, dir string) largeResult {
	var res largeResult
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.failure = err.Error()
		return res
	}
	ports, err := freePorts(2)
	if err != nil {
		res.failure = err.Error()
		return res
	}
	pc := proxyConfig{listen: hostPort(ports[0]), admin: hostPort(ports[1]), queueTimeout: 5 * time.Second,
		maxConns: 1000, fdLimit: r.fdLimit, maxBody: 2 << 30,
		backends: []upstreamSpec{{addr: backend, limit: 2 * r.opts.largeClients}}}
	target := backend
	proc, err := r.startProxy(ctx, scenario{}, p, dir, pc)
	if err != nil {
		res.failure = firstLine(err.Error())
		return res
	}
	if proc != nil {
		defer r.sup.stop(proc, 10*time.Second)
		target = pc.listen
	}
	size := int64(r.opts.largeMB) * 1_000_000
	rate := r.opts.largeRate * 1_000_000
	tag := fmt.Sprintf("%s-%d", p, time.Now().UnixNano())
	dl := largeRun(r.opts.largeClients, func(i int) (int64, error) {
		return largeDownload(ctx, fmt.Sprintf("http://%s/download?size=%d&id=%s-d%d", target, size, tag, i), rate)
	})
	ul := largeRun(r.opts.largeClients, func(i int) (int64, error) {
		return largeUpload(ctx, fmt.Sprintf("http://%s/upload?id=%s-u%d", target, tag, i), size, rate)
	})
	if proc != nil {
		res.measured, res.rssMiB = true, float64(usage(proc).hwmKiB)/1024
	}
	res.dlMBps, res.dlClient = dl.mbps(), dl.medianTook()
	res.ulMBps, res.ulTook = ul.mbps(), ul.medianTook()
	res.errors = dl.errors + ul.errors
	held := heldTimes(events, tag)
	res.dlHeld, res.ulHeld = median(held["download"]), median(held["upload"])
	return res
}

// largeBatch is what one batch of concurrent transfers did.
type largeBatch struct {
	bytes   int64
	elapsed time.Duration
	took    []float64
	errors  int
}

func (b largeBatch) mbps() float64 {
	if b.elapsed <= 0 {
		return 0
	}
	return float64(b.bytes) / 1e6 / b.elapsed.Seconds()
}

func (b largeBatch) medianTook() float64 { return median(b.took) }

func largeRun(n int, f func(i int) (int64, error)) largeBatch {
	var mu sync.Mutex
	var b largeBatch
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			t0 := time.Now()
			k, err := f(i)
			mu.Lock()
			defer mu.Unlock()
			b.bytes += k
			b.took = append(b.took, time.Since(t0).Seconds())
			if err != nil {
				b.errors++
				if b.errors == 1 {
					fmt.Fprintf(os.Stderr, "bench: large: transfer %d: %v\n", i, err)
				}
			}
		})
	}
	wg.Wait()
	b.elapsed = time.Since(start)
	return b
}

var largeClient = &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{Proxy: nil}}

// pace sleeps so that n bytes since start go at about rate bytes/s.
func pace(start time.Time, n int64, rate int) {
	if rate > 0 {
		if ahead := time.Duration(float64(n)/float64(rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
}

func largeDownload(ctx context.Context, url string, rate int) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := largeClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	buf := make([]byte, 64<<10)
	start := time.Now()
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		n += int64(k)
		pace(start, n, rate)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// pacedReader is size bytes of noise at about rate bytes/s.
type pacedReader struct {
	r     io.Reader
	rate  int
	n     int64
	start time.Time
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	k, err := p.r.Read(b[:min(len(b), 64<<10)])
	p.n += int64(k)
	pace(p.start, p.n, p.rate)
	return k, err
}

func largeUpload(ctx context.Context, url string, size int64, rate int) (int64, error) {
	body := &pacedReader{r: io.LimitReader(rand.NewChaCha8([32]byte{1}), size), rate: rate}
	req, _ := http.NewRequestWithContext(ctx, "POST", url, body)
	req.ContentLength = size
	resp, err := largeClient.Do(req)
	if err != nil {
		return body.n, err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.TrimSpace(string(got)) != strconv.FormatInt(size, 10) {
		return body.n, fmt.Errorf("status %d, app read %q of %d", resp.StatusCode, got, size)
	}
	return size, nil
}

// heldTimes reads the app's event log: seconds each worker was held, by
// kind, for the transfers whose id starts with tag.
func heldTimes(path, tag string) map[string][]float64 {
	out := map[string][]float64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 5 || !strings.HasPrefix(fs[1], tag+"-") {
			continue
		}
		start, err1 := strconv.ParseFloat(fs[2], 64)
		end, err2 := strconv.ParseFloat(fs[3], 64)
		if err1 == nil && err2 == nil {
			out[fs[0]] = append(out[fs[0]], end-start)
		}
	}
	return out
}

func largeLine(r largeResult) string {
	if r.failure != "" {
		return "FAILED: " + r.failure
	}
	return fmt.Sprintf("download %s MB/s (client %s s, worker held %s s), upload %s MB/s (client %s s, worker held %s s), RSS %s MiB, errors %d",
		formatNum(r.dlMBps), formatNum(r.dlClient), formatNum(r.dlHeld), formatNum(r.ulMBps), formatNum(r.ulTook),
		formatNum(r.ulHeld), formatNum(r.rssMiB), r.errors)
}

// writeLarge renders the large scenario's table, ratios to HAProxy's.
func (r *runner) writeLarge(w io.Writer, rows []largeResult) {
	o := r.opts
	fmt.Fprintf(w, "\n## %s: %d clients at once each download, then upload, %d MB at %d MB/s through 1 gunicorn gthread backend (32 threads)\n\n",
		largeName, o.largeClients, o.largeMB, o.largeRate)
	fmt.Fprintln(w, "Worker held: median seconds the app's thread was busy with one transfer, from its own log; "+
		"a client takes about size/rate. Ratios to HAProxy's in parentheses (lower is better but for MB/s). "+
		"nginx: proxy_buffering and proxy_request_buffering on (its defaults), client_max_body_size 2g; "+
		"shardgate: its defaults, max_body_bytes 2GiB; HAProxy streams both ways.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| proxy | download MB/s | worker held per download | upload MB/s | worker held per upload | peak RSS MiB | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	var base *largeResult
	for i := range rows {
		if rows[i].proxy == nameHAProxy && rows[i].failure == "" {
			base = &rows[i]
		}
	}
	cell := func(v float64, pick func(largeResult) float64) string {
		s := formatNum(v)
		if base != nil && pick(*base) > 0 {
			s += fmt.Sprintf(" (%.2f×)", v/pick(*base))
		}
		return s
	}
	for _, x := range rows {
		if x.failure != "" {
			fmt.Fprintf(w, "| %s | failed: %s | | | | | |\n", x.proxy, x.failure)
			continue
		}
		rss := "—"
		if x.measured {
			rss = cell(x.rssMiB, func(r largeResult) float64 { return r.rssMiB })
		}
		fmt.Fprintf(w, "| %s | %s | %s s | %s | %s s | %s | %d |\n", x.proxy,
			cell(x.dlMBps, func(r largeResult) float64 { return r.dlMBps }),
			cell(x.dlHeld, func(r largeResult) float64 { return r.dlHeld }),
			cell(x.ulMBps, func(r largeResult) float64 { return r.ulMBps }),
			cell(x.ulHeld, func(r largeResult) float64 { return r.ulHeld }),
			rss, x.errors)
	}
}
