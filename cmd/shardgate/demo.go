package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"shardgate/config"
	"shardgate/gateway"
	"shardgate/internal/demo"
)

// runDemo starts one in-process demo backend per backend of the config (a
// gunicorn-like pool with as many workers as the backend's limit) and the
// gateway in front of them.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("shardgate demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "config.example.yaml", "configuration `file`; its backends are started in-process")
	burst := fs.Int("burst", 0, "fire `N` concurrent requests, print what each backend saw, and exit")
	delay := fs.Duration("delay", 50*time.Millisecond, "time each demo request holds its worker")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		report(*path, err, stdout, stderr)
		return 1
	}
	log := newLogger(stderr, cfg.Log, "")
	backends, err := startDemoBackends(cfg, *delay)
	defer func() {
		for _, b := range backends {
			b.Close()
		}
	}()
	if err != nil {
		fmt.Fprintf(stderr, "shardgate demo: %v\n", err)
		return 1
	}
	stop := make(chan struct{})
	h := &hooks{stop: stop, ready: func(listen []string, gw *gateway.Gateway) {
		url := "http://" + loopback(listen[0]) + "/"
		fmt.Fprintf(stdout, "shardgate demo: proxy %s", url)
		if cfg.Admin.Address != "" {
			fmt.Fprintf(stdout, "  status http://%s/status?format=html  metrics http://%s/metrics",
				loopback(cfg.Admin.Address), loopback(cfg.Admin.Address))
		}
		fmt.Fprintln(stdout)
		if *burst <= 0 {
			fmt.Fprintf(stdout, "try: curl %s   (Ctrl-C stops)\n", url)
			return
		}
		res := demo.Burst(context.Background(), url, *burst, 60*time.Second)
		demo.Report(stdout, backends, res)
		for _, u := range gw.Snapshot() {
			fmt.Fprintf(stdout, "upstream %s shed: %v\n", u.Name, u.Shed)
		}
		close(stop)
	}}
	if err := serve(cfg, *path, log, h); err != nil {
		log.Error("shardgate stopped", "error", err)
		return 1
	}
	return 0
}

func startDemoBackends(cfg *config.Config, delay time.Duration) ([]*demo.Backend, error) {
	var out []*demo.Backend
	for _, name := range cfg.UpstreamNames {
		for i, bc := range cfg.Upstreams[name].Backends {
			b := &demo.Backend{
				Name:    fmt.Sprintf("%s-%d", name, i+1),
				Addr:    bc.Address,
				Workers: max(bc.Limit(), 1),
				Delay:   delay,
			}
			if err := b.Start(); err != nil {
				return out, fmt.Errorf("demo backend %s: %w", bc.Address, err)
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// loopback turns ":8080" into "127.0.0.1:8080" for printing.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" && host != "0.0.0.0" && host != "::" {
		return addr
	}
	return net.JoinHostPort("127.0.0.1", port)
}
