package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// runner runs the selected scenarios. Not safe for concurrent use.
type runner struct {
	opts  *options
	root  string // module root (holds go.mod)
	work  string // temporary directory for configs, logs and wrk output
	tools tools
	sup   *supervisor
	// fdLimit is the RLIMIT_NOFILE every child inherits.
	fdLimit int
}

// outcome is every run of one proxy in one scenario.
type outcome struct {
	runs     []runResult
	failures []string
}

func run(ctx context.Context, o *options) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	t, err := checkTools(o)
	if err != nil {
		return err
	}
	nofile, err := raiseNoFile(max(65536, uint64(4*o.idleConns+8192)))
	if err != nil {
		return err
	}
	if nofile < uint64(o.idleConns+2048) && slices.Contains(o.scenarios, "idle") {
		fmt.Fprintf(os.Stderr, "bench: warning: open files limit is %d, too low for %d idle connections\n", nofile, o.idleConns)
	}
	work, err := os.MkdirTemp("", "shardgate-bench-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	// nginx's workers (user nobody when started as root) must reach their
	// temp files below it: the large scenario buffers bodies to disk.
	if err := os.Chmod(work, 0o711); err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	r := &runner{opts: o, root: root, work: work, tools: t, sup: newSupervisor(), fdLimit: int(nofile)}
	err = r.runAndReport(ctx)
	r.sup.stopAll()
	if o.keep || (err != nil && ctx.Err() == nil) {
		fmt.Fprintln(os.Stderr, "bench: configs, logs and wrk output kept in", work)
	} else {
		os.RemoveAll(work)
	}
	return err
}

// runAndReport builds, runs every scenario and writes the report.
func (r *runner) runAndReport(ctx context.Context) error {
	if err := r.build(ctx); err != nil {
		return err
	}
	header := r.header()
	fmt.Fprintln(os.Stderr, strings.Join(header, "\n"))
	results, failed := r.runAll(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	var large []largeResult
	if slices.Contains(r.opts.scenarios, largeName) && ctx.Err() == nil {
		large = r.runLarge(ctx)
		for _, l := range large {
			failed = failed || l.failure != ""
		}
	}
	var report bytes.Buffer
	r.writeReport(&report, header, results)
	if large != nil {
		r.writeLarge(&report, large)
	}
	os.Stdout.Write(report.Bytes())
	if r.opts.out != "" {
		if err := os.WriteFile(r.opts.out, report.Bytes(), 0o644); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
		fmt.Fprintln(os.Stderr, "bench: report written to", r.opts.out)
	}
	if failed {
		return errors.New("some runs failed; see above")
	}
	return nil
}

// moduleRoot finds the directory holding go.mod, from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bench: run it inside the shardgate module (no go.mod found)")
		}
		dir = parent
	}
}

// build compiles the fast backend and, unless -shardgate names a binary,
// shardgate itself.
func (r *runner) build(ctx context.Context) error {
	r.tools.backend = filepath.Join(r.work, "backend")
	if err := r.goBuild(ctx, r.tools.backend, "./bench/backend"); err != nil {
		return err
	}
	if !r.opts.hasProxy(nameShardgate) && !r.opts.hasProxy(nameShardgateP2) {
		return nil
	}
	if r.opts.shardgate != "" {
		p, err := filepath.Abs(r.opts.shardgate)
		r.tools.shardgate = p
		return err
	}
	r.tools.shardgate = filepath.Join(r.work, "shardgate")
	if err := r.goBuild(ctx, r.tools.shardgate, "./cmd/shardgate"); err != nil {
		return fmt.Errorf("%w\n(to run without it: -proxies haproxy,nginx,direct)", err)
	}
	return nil
}

func (r *runner) goBuild(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = r.root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// runAll runs every scenario; within one, every round runs each proxy in
// turn. It reports whether any run failed.
func (r *runner) runAll(ctx context.Context) (map[string]map[string]*outcome, bool) {
	results := make(map[string]map[string]*outcome)
	failed := false
	for _, s := range scenarios(r.opts.unevenLimit) {
		if !slices.Contains(r.opts.scenarios, s.name) || ctx.Err() != nil {
			continue
		}
		byProxy := make(map[string]*outcome)
		results[s.name] = byProxy
		for _, p := range r.opts.proxies {
			byProxy[p] = &outcome{}
		}
		if err := r.runScenario(ctx, s, byProxy); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", s.name, err)
			for _, p := range r.opts.proxies {
				byProxy[p].failures = append(byProxy[p].failures, err.Error())
			}
		}
		for _, oc := range byProxy {
			failed = failed || len(oc.failures) > 0
		}
	}
	return results, failed
}

func (r *runner) runScenario(ctx context.Context, s scenario, byProxy map[string]*outcome) error {
	dir := filepath.Join(r.work, s.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bs, err := r.startBackends(ctx, s, dir)
	if err != nil {
		return err
	}
	defer bs.stop(r.sup)
	for round := 1; round <= r.opts.rounds; round++ {
		for _, p := range r.opts.proxies {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if s.tls && p == nameDirect {
				continue // the backends speak plain HTTP: no TLS ceiling to show
			}
			runDir := filepath.Join(dir, fmt.Sprintf("r%d-%s", round, p))
			res, err := r.runOne(ctx, s, bs, p, runDir)
			tag := fmt.Sprintf("[%s %d/%d] %-9s", s.name, round, r.opts.rounds, p)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				fmt.Fprintf(os.Stderr, "%s FAILED: %v\n", tag, err)
				byProxy[p].failures = append(byProxy[p].failures, firstLine(err.Error()))
				continue
			}
			byProxy[p].runs = append(byProxy[p].runs, res)
			fmt.Fprintf(os.Stderr, "%s %s\n", tag, progressLine(s, res))
		}
	}
	return nil
}

func progressLine(s scenario, res runResult) string {
	sum := summarize("", []runResult{res})
	line := fmt.Sprintf("%s req/s, 2xx %s/s, p50 %s ms, p99 %s ms, errors %s",
		formatNum(sum.rps), formatNum(sum.goodput), formatNum(sum.p50), formatNum(sum.p99), errorsCell(sum))
	if res.measured {
		line += fmt.Sprintf(", CPU %s µs/req, RSS %s MiB", formatNum(sum.cpuUS), formatNum(sum.rssMiB))
	}
	if s.shares {
		line += ", shares " + sharesCell(sum.shares)
	}
	if s.idle {
		line += fmt.Sprintf(", idle alive %d", res.idleAlive)
	}
	return line
}

// header describes the run for the top of the report.
func (r *runner) header() []string {
	o := r.opts
	lines := []string{
		"command: `" + commandLine() + "`",
		"date: " + time.Now().UTC().Format("2006-01-02 15:04 MST"),
	}
	lines = append(lines, machineInfo(r.tools)...)
	lines = append(lines, fmt.Sprintf("settings: %d round(s), medians; wrk -t2 -c%d -d%s --timeout %s after a %s warm-up; idle: %d connections, wrk -d%s",
		o.rounds, o.conns, wholeSeconds(o.duration), wholeSeconds(o.wrkTimeout), o.warmup, o.idleConns, wholeSeconds(o.idleDuration)))
	return lines
}

// writeReport renders the markdown report.
func (r *runner) writeReport(w io.Writer, header []string, results map[string]map[string]*outcome) {
	fmt.Fprintln(w, "# shardgate side-by-side benchmark")
	fmt.Fprintln(w)
	for _, h := range header {
		fmt.Fprintln(w, "- "+h)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each cell is the median over the rounds, with its ratio to HAProxy's in parentheses "+
		"(higher is better for req/s and 2xx/s, lower for the rest). CPU is utime+stime of the proxy's "+
		"processes during the measured run per response; peak RSS is VmHWM summed over them. "+
		"\"direct\" is wrk straight to the backends, connections split evenly, the ceiling. "+
		"shardgate: least_inflight, max_inflight per backend, queue timeout 5s; HAProxy: leastconn, maxconn, "+
		"timeout queue 5s, http-reuse always, nbthread 2; nginx: least_conn, max_conns (no queue), keepalive 64, 2 workers.")
	for _, s := range scenarios(r.opts.unevenLimit) {
		byProxy, ok := results[s.name]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "\n## %s: %s\n\n", s.name, s.title)
		var rows []summary
		for _, p := range r.opts.proxies {
			sum := summarize(p, byProxy[p].runs)
			sum.failures = byProxy[p].failures
			rows = append(rows, sum)
		}
		writeTable(w, s, rows, r.opts.idleConns)
	}
}
