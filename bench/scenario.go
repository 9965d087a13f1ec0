package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// scenario is one load shape run against every proxy.
type scenario struct {
	name     string
	title    string
	gunicorn bool  // gunicorn + Flask backends; otherwise the fast Go backend
	slow     []int // per backend: multiplier of the sleep (len = backend count)
	limit    int   // per-backend limit every proxy enforces; 0 = none
	path     string
	idle     bool // hold opts.idleConns idle keep-alive connections during the run
	shares   bool // report each backend's share of requests
	status   bool // count responses by status code
	tls      bool // the proxy terminates TLS (ECDSA P-256); no direct run
	close    bool // with tls: one request per connection, each a full handshake (bench/handshake.go)
}

// scenarios returns the scenarios in the order they run; unevenLimit is the
// per-backend limit of the uneven scenario (0 = none).
func scenarios(unevenLimit int) []scenario {
	uneven := "no limits"
	if unevenLimit > 0 {
		uneven = fmt.Sprintf("per-backend limit %d", unevenLimit)
	}
	return []scenario{
		{name: "raw", title: "small responses from 2 fast Go backends, no limits",
			slow: []int{1, 1}, path: "/"},
		{name: "overload", title: "4 gunicorn backends × 2 sync workers, /work?ms=20, per-backend limit 2",
			gunicorn: true, slow: []int{1, 1, 1, 1}, limit: 2, path: "/work?ms=20", status: true},
		{name: "uneven", title: "3 gunicorn backends × 2 sync workers, the last 10× slower (200 ms vs 20 ms), " + uneven,
			gunicorn: true, slow: []int{1, 1, 10}, limit: unevenLimit, path: "/work?ms=20", shares: true, status: true},
		{name: "idle", title: "short load on 2 fast Go backends while idle keep-alive connections are held open",
			slow: []int{1, 1}, path: "/", idle: true},
		{name: "tls-keepalive", title: "HTTPS over kept-alive connections (ECDSA P-256), 2 fast Go backends",
			slow: []int{1, 1}, path: "/", tls: true},
		{name: "tls-handshake", title: "HTTPS, a new connection and full handshake (no resumption) per request, 2 fast Go backends",
			slow: []int{1, 1}, path: "/", tls: true, close: true},
	}
}

// readyPath is a cheap request that answers 200 once the path works.
func (s scenario) readyPath() string {
	if s.gunicorn {
		return "/work?ms=0"
	}
	return "/"
}

// backendSet is the running backends of one scenario.
type backendSet struct {
	addrs  []string
	logs   []string // gunicorn access logs, one line a request
	starts []string // one byte per request started (see app.py)
	procs  []*child
}

// startBackends starts the scenario's backends and waits until each answers.
func (r *runner) startBackends(ctx context.Context, s scenario, dir string) (*backendSet, error) {
	ports, err := freePorts(len(s.slow))
	if err != nil {
		return nil, err
	}
	bs := &backendSet{}
	for i, slow := range s.slow {
		addr := hostPort(ports[i])
		name := fmt.Sprintf("backend%d", i)
		var argv, env []string
		if s.gunicorn {
			access := filepath.Join(dir, name+".access.log")
			starts := filepath.Join(dir, name+".starts")
			bs.logs, bs.starts = append(bs.logs, access), append(bs.starts, starts)
			argv = []string{gunicornPath, "-w", "2", "-k", "sync", "-b", addr,
				"--chdir", filepath.Join(r.root, "bench", "app"),
				"--access-logfile", access, "--timeout", "30", "app:app"}
			env = []string{"BENCH_SLOW_FACTOR=" + strconv.Itoa(slow), "BENCH_BACKEND_NAME=" + name,
				"BENCH_STARTS_FILE=" + starts}
		} else {
			argv = []string{r.tools.backend, "-addr", addr}
		}
		c, err := r.sup.start(name, filepath.Join(dir, name+".log"), env, argv...)
		if err != nil {
			bs.stop(r.sup)
			return nil, err
		}
		bs.addrs, bs.procs = append(bs.addrs, addr), append(bs.procs, c)
	}
	for i, c := range bs.procs {
		if err := waitHTTP(ctx, c, "http://"+bs.addrs[i]+s.readyPath(), 30*time.Second); err != nil {
			bs.stop(r.sup)
			return nil, err
		}
	}
	return bs, nil
}

func (bs *backendSet) stop(sup *supervisor) {
	for _, c := range bs.procs {
		sup.stop(c, 10*time.Second)
	}
}

// counts returns the number of requests each backend has logged so far.
func (bs *backendSet) counts() []uint64 {
	out := make([]uint64, len(bs.logs))
	for i, p := range bs.logs {
		b, err := os.ReadFile(p)
		if err == nil {
			out[i] = uint64(bytes.Count(b, []byte("\n")))
		}
	}
	return out
}

// settle waits until no backend has started a request for quietFor: a
// gunicorn backend keeps serving requests left in its listen backlog by
// clients that are gone, which would steal the start of the next run.
func (bs *backendSet) settle(ctx context.Context, quietFor, timeout time.Duration) error {
	if len(bs.starts) == 0 {
		return nil
	}
	deadline := time.Now().Add(timeout)
	last, quietSince := bs.startCount(), time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Since(quietSince) < quietFor {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if n := bs.startCount(); n != last {
			last, quietSince = n, time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("backends still busy after %v", timeout)
		}
	}
	return nil
}

func (bs *backendSet) startCount() int64 {
	var n int64
	for _, p := range bs.starts {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}

// runResult is what one run of one proxy in one scenario measured.
type runResult struct {
	wrk       wrkResult
	cpuTicks  uint64 // proxy CPU time during the measured run
	rssKiB    uint64 // peak resident set of the proxy's processes
	measured  bool   // cpuTicks and rssKiB are valid (not for direct)
	shares    []uint64
	idleAlive int
}

// runOne starts proxy p in front of bs, loads it and stops it.
func (r *runner) runOne(ctx context.Context, s scenario, bs *backendSet, p string, dir string) (runResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return runResult{}, fmt.Errorf("run dir: %w", err)
	}
	ports, err := freePorts(2)
	if err != nil {
		return runResult{}, err
	}
	pc := proxyConfig{
		listen: hostPort(ports[0]), admin: hostPort(ports[1]),
		queueTimeout: 5 * time.Second, maxConns: r.opts.conns + 100, fdLimit: r.fdLimit,
	}
	if s.tls {
		if pc.tls, err = makeBenchCert(dir); err != nil {
			return runResult{}, err
		}
	}
	if s.idle {
		pc.maxConns += r.opts.idleConns
	}
	for _, a := range bs.addrs {
		pc.backends = append(pc.backends, upstreamSpec{addr: a, limit: s.limit})
	}
	proc, err := r.startProxy(ctx, s, p, dir, pc)
	if err != nil {
		return runResult{}, err
	}
	if proc != nil {
		defer r.sup.stop(proc, 10*time.Second)
	}
	targets := []string{pc.listen}
	if proc == nil {
		targets = bs.addrs
	}
	return r.load(ctx, s, bs, proc, targets, dir)
}

// startProxy writes the config, starts the proxy and waits until it proxies
// a request; nil for direct.
func (r *runner) startProxy(ctx context.Context, s scenario, p, dir string, pc proxyConfig) (*child, error) {
	argv, err := proxyCommand(p, dir, r.tools, pc)
	if err != nil || argv == nil {
		return nil, err
	}
	if isShardgate(p) {
		if out, err := runCheck(ctx, argv[0], "-check", "-config", argv[2]); err != nil {
			return nil, fmt.Errorf("shardgate -check %s: %w\n%s", argv[2], err, out)
		}
	}
	proc, err := r.sup.start(p, filepath.Join(dir, p+".log"), nil, argv...)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, proc, s.scheme()+"://"+pc.listen+s.readyPath(), 15*time.Second); err != nil {
		r.sup.stop(proc, 5*time.Second)
		return nil, err
	}
	return proc, nil
}

// load runs the warm-up and the measured wrk run against targets.
func (r *runner) load(ctx context.Context, s scenario, bs *backendSet, proc *child, targets []string, dir string) (runResult, error) {
	wp := wrkParams{url: s.scheme() + "://" + targets[0] + s.path, threads: 2, conns: r.opts.conns,
		duration: r.opts.duration, timeout: r.opts.wrkTimeout, countStatus: s.status}
	if len(targets) > 1 {
		wp.targets = targets
	}
	var res runResult
	var ic *idleConns
	if s.idle {
		wp.duration = r.opts.idleDuration
		var err error
		if ic, err = openIdle(ctx, targets, s.readyPath(), r.opts.idleConns); err != nil {
			return res, err
		}
		defer ic.close()
	}
	if r.opts.warmup > 0 {
		warm := wp
		warm.duration, warm.countStatus = r.opts.warmup, false
		if _, err := r.drive(ctx, s, dir, "warmup", targets[0], warm); err != nil {
			return res, err
		}
	}
	if err := bs.settle(ctx, time.Second, time.Minute); err != nil {
		return res, err
	}
	before, u0 := bs.counts(), usage(proc)
	w, err := r.drive(ctx, s, dir, "wrk", targets[0], wp)
	if err != nil {
		return res, err
	}
	u1, after := usage(proc), bs.counts()
	res.wrk = w
	if ic != nil {
		res.idleAlive = ic.alive()
	}
	if proc != nil {
		if proc.exited() {
			return res, fmt.Errorf("%s exited during the run; log %s:\n%s", proc.name, proc.logPath, proc.logTail())
		}
		res.measured, res.rssKiB = true, u1.hwmKiB
		res.cpuTicks = u1.ticks - min(u0.ticks, u1.ticks)
	}
	if s.shares {
		for i := range after {
			res.shares = append(res.shares, after[i]-min(before[i], after[i]))
		}
	}
	return res, nil
}

func usage(c *child) treeUsage {
	if c == nil {
		return treeUsage{}
	}
	return usageOf(c.pid())
}

func runCheck(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

// hostPort joins 127.0.0.1 and port.
func hostPort(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
