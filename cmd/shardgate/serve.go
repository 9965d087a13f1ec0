package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"

	"shardgate/accesslog"
	"shardgate/admin"
	"shardgate/config"
	"shardgate/gateway"
	"shardgate/listener"
	"shardgate/metrics"
)

// hooks let the demo drive a running gateway; nil for a plain run.
type hooks struct {
	ready func(listen []string, gw *gateway.Gateway) // called once serving
	stop  <-chan struct{}                            // closed to shut down
}

// serve runs the gateway until SIGTERM/SIGINT (or h.stop), reloading the
// config at path on SIGHUP, then drains and returns.
func serve(cfg *config.Config, path string, log *slog.Logger, h *hooks) error {
	reg := metrics.NewMetrics(buildVersion())
	var access *accesslog.Writer
	if cfg.Log.AccessLog != "" {
		w, err := accesslog.Open(cfg.Log.AccessLog, cfg.Log.AccessLogBuffer)
		if err != nil {
			return fmt.Errorf("opening access log: %w", err)
		}
		defer w.Close()
		access = w
		reg.SetAccessLogDropped(w.Dropped)
	}
	inherited, err := inheritedSockets(cfg.Listen, log)
	if err != nil {
		return err
	}
	defer closeInherited(inherited)   // whatever the config no longer listens on
	_, handed := inherited[slotsName] // an upgrade hands the slot segment down
	seg, shared, err := joinSlots(inherited, log)
	if err != nil {
		return err
	}
	// seg is never unmapped: a request still running after the drain
	// releases its slot there until the process exits.
	defer shared.Close() // after the drain: what is still held is returned after its hold
	opts := []gateway.Option{gateway.WithShared(shared)}
	if cfg.Cluster != nil {
		opts = append(opts, gateway.WithCluster())
	}
	gw, err := gateway.New(cfg, reg, access, log, opts...)
	if err != nil {
		return err
	}
	edge, err := newEdges(inherited)
	if err != nil {
		return err
	}
	defer edge.close()
	clusterStatus := func() *metrics.ClusterStatus { return nil }
	if cfg.Cluster != nil && !isWorker() { // a worker's supervisor runs the cluster node
		node, err := startCluster(cfg.Cluster, gatewayTargets(gw), handed, log)
		if err != nil {
			return err
		}
		defer node.Close() // after the drain: its shares are returned after the hold
		clusterStatus = node.Status
	}
	groups, err := listen(cfg.Listen, inherited)
	if err != nil {
		return err
	}
	defer closeGroups(groups)

	var ready atomic.Bool
	snapshot := func() metrics.Snapshot {
		return metrics.Snapshot{
			Version:   buildVersion(),
			Ready:     ready.Load(),
			Listeners: listenerStatus(groups),
			Upstreams: gw.Snapshot(),
			Spool:     gw.SpoolStatus(),
			Cluster:   clusterStatus(),
		}
	}
	reg.SetSource(snapshot)
	adminAddr := "-"
	var adminLn net.Listener
	if cfg.Admin.Address != "" {
		ln, err := adminListener(cfg.Admin.Address, inherited)
		if err != nil {
			return fmt.Errorf("admin listener: %w", err)
		}
		adminLn = ln
		as := admin.NewServer(reg, snapshot, ready.Load)
		// A worker's private socket answers its supervisor only, which
		// guards the admin listener for the instance.
		serveLn := net.Listener(supervisorOnly{ln})
		if !isWorker() {
			if serveLn, err = edge.setupAdmin(cfg.Admin, as, ln, reg.Registry(), log); err != nil {
				return fmt.Errorf("admin listener: %w", err)
			}
		}
		go func() {
			if err := as.Serve(serveLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin server stopped", "error", err)
			}
		}()
		defer as.Shutdown(context.Background())
		adminAddr = ln.Addr().String()
	}

	// Signals are caught from here on, before ready is logged: a SIGHUP
	// sent on the ready line would otherwise take Go's default action and
	// kill the process (regression: TestSignalOnReadyLine). One that arrives
	// before waitForStop runs waits in the channel.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sigs)

	srv := gateway.NewServer(gw, cfg.Server, log)
	if err := edge.setupListeners(cfg, groups, srv, reg); err != nil {
		return err
	}
	edge.startTickets()
	srv.Serve(groups)
	ready.Store(true)
	addrs := make([]string, len(groups))
	for i, g := range groups {
		addrs[i] = g.Addr().String()
	}
	log.Info(readyMessage(), "listen", strings.Join(addrs, ","), "admin", adminAddr, "version", buildVersion())
	if h != nil && h.ready != nil {
		go h.ready(addrs, gw)
	}
	takeOver(log)

	up := &upgrader{groups: groups, admin: adminLn, slots: seg.File(), tickets: edge.tickets, log: log}
	waitForStop(sigs, cfg, path, gw, reg, log, h, up, edge)
	ready.Store(false)
	log.Info("draining", "timeout", cfg.Server.ShutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown timeout passed with requests still open", "error", err)
	}
	gw.CloseTunnels(ctx) // open tunnels get what remains of shutdown_timeout
	gw.Close()
	log.Info("stopped")
	return nil
}

// waitForStop handles the signals on sigs until one asks the process to stop.
func waitForStop(sigs <-chan os.Signal, running *config.Config, path string, gw *gateway.Gateway, reg *metrics.Metrics,
	log *slog.Logger, h *hooks, up *upgrader, edge *edges) {
	var stop <-chan struct{}
	if h != nil {
		stop = h.stop
	}
	for {
		select {
		case <-stop:
			return
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				reload(running, path, gw, reg, log, edge)
			case syscall.SIGUSR1:
				reopenAccessLog(gw, log)
			case syscall.SIGUSR2:
				up.start()
			default:
				log.Info("signal received", "signal", sig.String())
				return
			}
		}
	}
}

// reload applies the config file again: upstreams and routes change in
// place; listeners, admin and server settings need a restart (or an upgrade).
// An invalid file changes nothing.
func reload(running *config.Config, path string, gw *gateway.Gateway, reg *metrics.Metrics, log *slog.Logger, edge *edges) {
	cfg, err := config.Load(path)
	if err == nil {
		err = gw.Apply(cfg)
	}
	if edge != nil {
		// Certificates and admin secrets are re-read whatever the YAML
		// says; a pair that fails keeps the old one serving.
		if cerr := edge.reload(); cerr != nil {
			log.Error("reload: certificate or secret file refused; the old one stays in use", "error", cerr)
			err = errors.Join(err, cerr)
		}
	}
	if err == nil && !reflect.DeepEqual(
		[]any{unlined(cfg), cfg.Server, cfg.Log, cfg.Processes, cfg.Cluster},
		[]any{unlined(running), running.Server, running.Log, running.Processes, running.Cluster}) {
		log.Warn("reload: listen, admin, server, log, processes and cluster settings take effect only after a restart", "path", path)
	}
	reg.ConfigReload(err == nil)
	if err != nil {
		log.Error("reload failed; configuration unchanged", "path", path, "error", err)
		return
	}
	log.Info("reloaded", "path", path)
}

// listen opens the configured listeners, taking over the sockets a parent
// handed down for the same address instead of binding new ones.
func listen(ls []config.Listen, inherited map[string][]*os.File) ([]*listener.Group, error) {
	var groups []*listener.Group
	for _, l := range ls {
		var g *listener.Group
		var err error
		if files := inherited[l.Address]; files != nil {
			delete(inherited, l.Address)
			g, err = listener.FromFiles(l.Address, files)
		} else {
			g, err = listener.Listen(l.Address, l.Shards)
		}
		if err != nil {
			closeGroups(groups)
			return nil, err
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func closeGroups(groups []*listener.Group) {
	for _, g := range groups {
		g.Close()
	}
}

func listenerStatus(groups []*listener.Group) []metrics.ListenerStatus {
	out := make([]metrics.ListenerStatus, len(groups))
	for i, g := range groups {
		s := metrics.ListenerStatus{Address: g.Address(), Open: g.Open()}
		for shard := range g.Shards() {
			s.Accepted = append(s.Accepted, g.Accepted(shard))
		}
		out[i] = s
	}
	return out
}
