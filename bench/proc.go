package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

var errExited = errors.New("bench: process exited")

// child is one process the benchmark started, in a process group of its own
// so that it and its workers are stopped together by its PID. Safe for
// concurrent use.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been waited for
}

// supervisor owns every child the benchmark starts and stops them all on
// exit, failure or Ctrl-C. Safe for concurrent use.
type supervisor struct {
	mu sync.Mutex
	// protects live
	live map[*child]struct{}
}

func newSupervisor() *supervisor {
	return &supervisor{live: make(map[*child]struct{})}
}

// start runs argv with stdout and stderr appended to logPath.
func (s *supervisor) start(name, logPath string, env []string, argv ...string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log of %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	// Pdeathsig stops the child should this program die without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	s.mu.Lock()
	s.live[c] = struct{}{}
	s.mu.Unlock()
	return c, nil
}

// pid is the process id of the child, which is also its process group id.
func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, and SIGKILL if it is still
// there after grace.
func (s *supervisor) stop(c *child, grace time.Duration) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	if c.exited() {
		return
	}
	_ = syscall.Kill(-c.pid(), syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
}

// stopAll stops every child still running.
func (s *supervisor) stopAll() {
	s.mu.Lock()
	cs := make([]*child, 0, len(s.live))
	for c := range s.live {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.stop(c, 5*time.Second)
		}()
	}
	wg.Wait()
}

// logTail returns the last lines of the child's log for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 200, the child exits, or timeout
// passes.
func waitHTTP(ctx context.Context, c *child, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// No proxy from the environment, no connection left open afterwards.
	client := &http.Client{Timeout: time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the bench's own self-signed certificate
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s after %v (last: %v); log %s:\n%s",
				c.name, url, timeout, last, c.logPath, c.logTail())
		case <-c.done:
			return fmt.Errorf("%s: %w; log %s:\n%s", c.name, errExited, c.logPath, c.logTail())
		case <-tick.C:
		}
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. All are held open
// together before being released, so they differ from each other.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
