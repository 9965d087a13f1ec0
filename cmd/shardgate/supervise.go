package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"shardgate/admin"
	"shardgate/cluster"
	"shardgate/config"
	"shardgate/discovery"
	"shardgate/gateway"
	"shardgate/listener"
	"shardgate/shm"
)

// envWorker marks a process started by the supervisor of `processes: N`:
// its value is the worker's number. A worker serves like a single process
// on the sockets and slot segment it inherits, and leaves upgrades to the
// supervisor.
const envWorker = "SHARDGATE_WORKER"

// Restart back-off of a crashing worker: none after a worker that ran for
// at least restartReset, else doubling from restartMin up to restartMax.
const (
	restartMin   = 100 * time.Millisecond
	restartMax   = 10 * time.Second
	restartReset = 10 * time.Second
)

// supervising reports whether this process is the supervisor of several
// workers rather than a gateway itself.
func supervising(cfg *config.Config) bool {
	return cfg.Processes > 1 && os.Getenv(envWorker) == ""
}

// isWorker reports whether this process is a worker of a supervisor.
func isWorker() bool { return os.Getenv(envWorker) != "" }

// warn prints what -check finds valid but likely a mistake.
func warn(path string, cfg *config.Config, err error, stderr io.Writer) {
	if err != nil {
		return
	}
	for _, w := range append(cfg.Warnings(runtime.NumCPU()), discoverWarnings(cfg)...) {
		fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
	}
}

// discoverWarnings resolves each discover name once, as the gateway would
// at start, and says which would leave its upstream without backends.
func discoverWarnings(cfg *config.Config) []string {
	var out []string
	for _, name := range cfg.UpstreamNames {
		d := cfg.Upstreams[name].Discover
		if d == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, r, err := discovery.Lookup(ctx, gateway.DiscoverySpec(d))
		cancel()
		switch r {
		case discovery.ResultEmpty:
			out = append(out, fmt.Sprintf("upstreams.%s.discover: %s has no address now: the upstream starts without backends", name, d.DNS))
		case discovery.ResultError:
			out = append(out, fmt.Sprintf("upstreams.%s.discover: %v: the upstream starts without backends", name, err))
		}
	}
	return out
}

// supervisor runs `processes: N`: it owns the listening sockets (shards per
// listener per worker, one SO_REUSEPORT group), the shared slot segment and
// the admin listener; it starts N workers that inherit them, restarts a
// worker that dies, forwards SIGHUP and SIGTERM, and on SIGUSR2 hands all of
// it to a new binary. It never closes a socket while it runs, so a worker's
// crash resets no connection waiting in an accept queue.
type supervisor struct {
	cfg  *config.Config
	path string
	log  *slog.Logger
	exe  string

	seg     *shm.Segment
	node    *cluster.Node         // the instance's cluster membership; nil without cluster
	listens map[string][]*os.File // by listen address: every socket, kept open
	addrs   []string              // the bound addresses, for the ready line
	admin   net.Listener          // nil when off
	// The admin server of the instance, behind the guard and TLS of
	// cfg.Admin (edge), served on adminLn; reg counts its refusals.
	adminSrv *admin.Server
	adminLn  net.Listener
	edge     *edges
	reg      *prometheus.Registry
	workers  []*worker
	procs    int // GOMAXPROCS of each worker
}

// worker is one worker process slot; the process in it may be restarted.
type worker struct {
	index   int
	sockets map[string][]*os.File // its share of listens
	adminLn *net.UnixListener     // its private admin socket; nil when admin is off
	client  *http.Client          // talks to adminLn

	cmd     *exec.Cmd // nil while not running; owned by the supervisor loop
	started time.Time
	backoff time.Duration

	pid      atomic.Int64 // of cmd, for the admin goroutines; 0 while not running
	restarts atomic.Uint64
}

type exited struct {
	w   *worker
	cmd *exec.Cmd
	err error
}

func supervise(cfg *config.Config, path string, log *slog.Logger) int {
	for _, w := range cfg.Warnings(runtime.NumCPU()) {
		log.Warn(w)
	}
	s, err := newSupervisor(cfg, path, log)
	if err != nil {
		log.Error("shardgate stopped", "error", err)
		return 1
	}
	defer s.close()
	return s.run()
}

func newSupervisor(cfg *config.Config, path string, log *slog.Logger) (*supervisor, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the executable: %w", err)
	}
	s := &supervisor{cfg: cfg, path: path, log: log, exe: exe, listens: map[string][]*os.File{},
		procs: max(1, runtime.NumCPU()/cfg.Processes)}
	inherited, err := inheritedSockets(cfg.Listen, log)
	if err != nil {
		return nil, err
	}
	defer closeInherited(inherited)
	_, handed := inherited[slotsName] // an upgrade hands the slot segment down
	if s.seg, err = openSlots(inherited, log); err != nil {
		return nil, err
	}
	if cfg.Cluster != nil {
		// The supervisor is the replica: it divides the backends its
		// workers count in the segment, through the entries' share words.
		if s.node, err = startCluster(cfg.Cluster, segmentTargets(s.seg), handed, log); err != nil {
			return nil, err
		}
	}
	if err := s.openListens(inherited); err != nil {
		s.close()
		return nil, err
	}
	if cfg.Admin.Address != "" {
		if s.admin, err = adminListener(cfg.Admin.Address, inherited); err != nil {
			s.close()
			return nil, fmt.Errorf("admin listener: %w", err)
		}
		if err := s.setupAdmin(); err != nil {
			s.close()
			return nil, fmt.Errorf("admin listener: %w", err)
		}
	}
	for i := range cfg.Processes {
		w, err := s.newWorker(i)
		if err != nil {
			s.close()
			return nil, err
		}
		s.workers = append(s.workers, w)
	}
	return s, nil
}

// openListens opens shards × processes sockets per listener, or takes over
// the inherited ones.
func (s *supervisor) openListens(inherited map[string][]*os.File) error {
	for _, l := range s.cfg.Listen {
		files := inherited[l.Address]
		delete(inherited, l.Address)
		if files == nil {
			shards := l.Shards
			if shards == 0 {
				shards = s.procs
			}
			g, err := listener.Listen(l.Address, shards*s.cfg.Processes)
			if err != nil {
				return err
			}
			files, err = g.Files()
			g.Close() // the files keep the sockets open
			if err != nil {
				return err
			}
		}
		s.listens[l.Address] = files
		addr, err := boundAddr(files[0])
		if err != nil {
			return fmt.Errorf("listener %s: %w", l.Address, err)
		}
		s.addrs = append(s.addrs, addr)
	}
	return nil
}

func boundAddr(f *os.File) (string, error) {
	ln, err := net.FileListener(f)
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// newWorker makes worker i's share of the sockets and its admin socket.
func (s *supervisor) newWorker(i int) (*worker, error) {
	w := &worker{index: i, sockets: map[string][]*os.File{}}
	n := s.cfg.Processes
	for addr, files := range s.listens {
		for j, f := range files {
			if j%n == i {
				w.sockets[addr] = append(w.sockets[addr], f)
			}
		}
		if len(w.sockets[addr]) == 0 { // fewer inherited sockets than workers: share one
			w.sockets[addr] = []*os.File{files[i%len(files)]}
		}
	}
	if s.admin == nil {
		return w, nil
	}
	name := "@shardgate-" + strconv.Itoa(os.Getpid()) + "-worker-" + strconv.Itoa(i)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("worker %d admin socket: %w", i, err)
	}
	w.adminLn = ln
	w.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", name)
		},
		MaxIdleConnsPerHost: 2,
	}}
	return w, nil
}

// start runs a new process in w.
func (s *supervisor) start(w *worker, exits chan<- exited) error {
	named := make(map[string][]*os.File, len(w.sockets)+2)
	for addr, files := range w.sockets {
		named[addr] = files
	}
	named[slotsName] = []*os.File{s.seg.File()}
	if w.adminLn != nil {
		f, err := w.adminLn.File()
		if err != nil {
			return err
		}
		defer f.Close()
		named[adminName] = []*os.File{f}
	}
	env, files := listener.Export(named)
	cmd := exec.Command(s.exe, os.Args[1:]...)
	cmd.Env = append(workerEnviron(s.procs), listener.EnvFiles+"="+env, envWorker+"="+strconv.Itoa(w.index))
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting worker %d: %w", w.index, err)
	}
	w.cmd, w.started = cmd, time.Now()
	w.pid.Store(int64(cmd.Process.Pid))
	go func() { exits <- exited{w, cmd, cmd.Wait()} }()
	s.log.Info("worker started", "worker", w.index, "pid", cmd.Process.Pid, "gomaxprocs", s.procs)
	return nil
}

// workerEnviron is this process's environment for a worker: without the
// upgrade marker (only the supervisor stops the process it replaces) and
// with GOMAXPROCS = CPUs / processes unless the operator set it.
func workerEnviron(procs int) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envParent+"=") {
			env = append(env, kv)
		}
	}
	if _, ok := os.LookupEnv("GOMAXPROCS"); !ok {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	return env
}

// run supervises the workers until SIGTERM/SIGINT, then drains them.
func (s *supervisor) run() int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	exits := make(chan exited, len(s.workers))
	restarts := make(chan *worker, len(s.workers))
	for _, w := range s.workers {
		if err := s.start(w, exits); err != nil {
			s.log.Error("shardgate stopped", "error", err)
			s.stopAll(exits)
			return 1
		}
	}
	stopAdmin := s.serveAdmin()
	defer stopAdmin()
	readyCh := make(chan struct{})
	go s.awaitReady(readyCh)
	up := &upgrader{admin: s.admin, slots: s.seg.File(), log: s.log, files: s.listens}
	for {
		select {
		case <-readyCh:
			s.log.Info("ready", "listen", strings.Join(s.addrs, ","), "admin", s.adminAddr(),
				"version", buildVersion(), "processes", len(s.workers))
			takeOver(s.log)
			readyCh = nil
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				s.signalAll(syscall.SIGHUP)
				if err := s.edge.reload(); err != nil {
					s.log.Error("reload: certificate or secret file refused; the old one stays in use", "error", err)
				}
				s.log.Info("reload: forwarded to the workers")
				if cfg, err := config.Load(s.path); err == nil && cfg.Processes != len(s.workers) {
					s.log.Warn("reload: processes takes effect only after an upgrade (SIGUSR2) or a restart",
						"running", len(s.workers), "configured", cfg.Processes)
				}
			case syscall.SIGUSR2:
				up.start()
			default:
				s.log.Info("signal received", "signal", sig.String())
				s.stopAll(exits)
				s.log.Info("stopped")
				return 0
			}
		case e := <-exits:
			s.crashed(e, restarts)
		case w := <-restarts:
			if err := s.start(w, exits); err != nil {
				s.log.Error("restarting worker failed", "worker", w.index, "error", err)
				s.scheduleRestart(w, restarts)
			}
		}
	}
}

// crashed handles a worker that exited while it should run.
func (s *supervisor) crashed(e exited, restarts chan<- *worker) {
	w := e.w
	if w.cmd != e.cmd {
		return
	}
	ran := time.Since(w.started)
	w.cmd = nil
	w.pid.Store(0)
	w.restarts.Add(1)
	if ran >= restartReset {
		w.backoff = 0
	}
	s.log.Error("worker exited", "worker", w.index, "pid", e.cmd.Process.Pid, "status", exitStatus(e.err),
		"ran", ran.Round(time.Millisecond))
	s.scheduleRestart(w, restarts)
}

func (s *supervisor) scheduleRestart(w *worker, restarts chan<- *worker) {
	delay := w.backoff
	w.backoff = min(max(2*w.backoff, restartMin), restartMax)
	s.log.Info("restarting worker", "worker", w.index, "after", delay)
	time.AfterFunc(delay, func() { restarts <- w })
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + unix.SignalName(ws.Signal())
		}
		return "exit " + strconv.Itoa(ee.ExitCode())
	}
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func (s *supervisor) signalAll(sig syscall.Signal) {
	for _, w := range s.workers {
		if w.cmd != nil {
			_ = w.cmd.Process.Signal(sig)
		}
	}
}

// stopAll sends SIGTERM to every worker and waits until they have drained
// (server.shutdown_timeout, plus a margin; then SIGKILL).
func (s *supervisor) stopAll(exits <-chan exited) {
	s.signalAll(syscall.SIGTERM)
	deadline := time.NewTimer(s.cfg.Server.ShutdownTimeout + 5*time.Second)
	defer deadline.Stop()
	for s.running() > 0 {
		select {
		case e := <-exits:
			if e.w.cmd == e.cmd {
				e.w.cmd = nil
			}
		case <-deadline.C:
			s.log.Warn("workers still running after the shutdown timeout; killing them")
			s.signalAll(syscall.SIGKILL)
		}
	}
}

func (s *supervisor) running() int {
	n := 0
	for _, w := range s.workers {
		if w.cmd != nil {
			n++
		}
	}
	return n
}

// awaitReady closes ch once every worker answers /readyz (at once when the
// admin listener is off: then workers are taken as ready when started).
func (s *supervisor) awaitReady(ch chan<- struct{}) {
	defer close(ch)
	for _, w := range s.workers {
		if w.client == nil {
			continue
		}
		for !w.isReady() {
			time.Sleep(20 * time.Millisecond) // polling the worker's /readyz
		}
	}
}

func (w *worker) isReady() bool {
	resp, err := w.client.Get("http://worker/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (s *supervisor) adminAddr() string {
	if s.admin == nil {
		return "-"
	}
	return s.admin.Addr().String()
}

func (s *supervisor) close() {
	for _, files := range s.listens {
		for _, f := range files {
			f.Close()
		}
	}
	for _, w := range s.workers {
		if w.adminLn != nil {
			w.adminLn.Close()
		}
	}
	if s.admin != nil {
		s.admin.Close()
	}
	if s.node != nil {
		s.node.Close() // the workers have drained: the shares return after the hold
	}
	// s.seg stays mapped until exit: an admin request may still read it.
}

// readyMessage is the log message of a process that serves: "ready", or
// "worker ready" for a worker (the supervisor logs "ready" once all are).
func readyMessage() string {
	if isWorker() {
		return "worker ready"
	}
	return "ready"
}
