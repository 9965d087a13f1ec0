// Package etcdtest starts real etcd clusters (Debian's etcd-server) on
// loopback ports for tests, and stops them with t.Cleanup.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Member is one etcd process.
type Member struct {
	Name      string
	ClientURL string
	cmd       *exec.Cmd
	dir       string
	args      []string
}

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB
	Members []*Member
}

// Start starts an n-member etcd cluster with short election timeouts, and
// waits until it serves. Missing etcd skips the test.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (Debian: etcd-server; scripts/test-deps.sh)")
	}
	c := &Cluster{t: t}
	var initial []string
	peers := make([]string, n)
	for i := range n {
		m := &Member{Name: fmt.Sprintf("m%d", i), ClientURL: "http://" + freeAddr(t)}
		peers[i] = "http://" + freeAddr(t)
		initial = append(initial, m.Name+"="+peers[i])
		c.Members = append(c.Members, m)
	}
	for i, m := range c.Members {
		m.dir = t.TempDir()
		m.args = []string{bin,
			"--name", m.Name, "--data-dir", m.dir,
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "shardgate-test",
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--log-level", "error"}
		c.start(m)
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			c.Kill(m)
		}
	})
	cli := c.Client()
	defer cli.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Put(ctx, "/etcdtest/ready", "1")
		cancel()
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd cluster not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) start(m *Member) {
	c.t.Helper()
	cmd := exec.Command(m.args[0], m.args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting etcd: %v", err)
	}
	m.cmd = cmd
}

// Restart starts a killed member again on its data.
func (c *Cluster) Restart(m *Member) {
	c.t.Helper()
	c.start(m)
}

// Kill kills member m with SIGKILL (if running) and reaps it.
func (c *Cluster) Kill(m *Member) {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGCONT)
	m.cmd.Process.Kill()
	m.cmd.Wait()
	m.cmd = nil
}

// LoseQuorum kills the leader (which must exist), then one more member, so
// that a 3-member cluster has no quorum. It returns the second, for
// Restart to bring the quorum back.
func (c *Cluster) LoseQuorum() *Member {
	c.t.Helper()
	leader := c.Leader()
	if leader == nil {
		c.t.Fatal("no etcd leader")
	}
	c.Kill(leader)
	for _, m := range c.Members {
		if m != leader {
			c.Kill(m)
			return m
		}
	}
	c.t.Fatal("no member besides the leader")
	return nil
}

// Stop and Continue send SIGSTOP / SIGCONT to m (a member that stops
// answering without closing its sockets).
func (m *Member) Stop()     { m.cmd.Process.Signal(syscall.SIGSTOP) }
func (m *Member) Continue() { m.cmd.Process.Signal(syscall.SIGCONT) }

// Endpoints returns the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Client returns a client of the whole cluster; the caller closes it.
func (c *Cluster) Client() *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatalf("etcd client: %v", err)
	}
	return cli
}

// Leader returns the member that leads now, or nil.
func (c *Cluster) Leader() *Member {
	cli := c.Client()
	defer cli.Close()
	for _, m := range c.Members {
		if m.cmd == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, m.ClientURL)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return m
		}
	}
	return nil
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
