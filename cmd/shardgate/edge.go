package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"golang.org/x/crypto/acme/autocert"

	"shardgate/admin"
	"shardgate/config"
	"shardgate/gateway"
	"shardgate/listener"
	"shardgate/metrics"
	"shardgate/tlsconf"
)

// edges is the reloadable state of TLS termination and of the admin guard:
// certificate sets and secret files, re-read on SIGHUP.
type edges struct {
	certs   []*tlsconf.Certs
	guard   *admin.Guard
	configs []*tls.Config       // every TLS config, for the ticket keys
	tickets *tlsconf.TicketKeys // shared with an upgrade's new process
	stop    context.CancelFunc  // ends the ticket key rotation
}

// ticketsName is the name the ticket key seed is handed down under in a
// binary upgrade, so the new process resumes the old one's sessions.
const ticketsName = "tls-tickets"

// newEdges takes the ticket seed a parent handed down, if any.
func newEdges(inherited map[string][]*os.File) (*edges, error) {
	var seed []byte
	if files := inherited[ticketsName]; len(files) > 0 {
		delete(inherited, ticketsName)
		s, err := tlsconf.ReadSeed(files[0])
		closeInherited(map[string][]*os.File{ticketsName: files})
		if err != nil {
			return nil, err
		}
		seed = s
	}
	k, err := tlsconf.NewTicketKeys(seed)
	if err != nil {
		return nil, err
	}
	return &edges{tickets: k, stop: func() {}}, nil
}

// startTickets applies the shared ticket keys to every TLS config and keeps
// rotating them until close.
func (e *edges) startTickets() {
	if len(e.configs) == 0 {
		return
	}
	e.tickets.Apply(e.configs)
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	go e.tickets.Run(ctx, e.configs)
}

func (e *edges) close() { e.stop() }

// setupListeners gives every listener group its edge behaviour (PROXY
// protocol, TLS, HSTS, HTTPS redirect). groups are in cfg.Listen's order.
func (e *edges) setupListeners(cfg *config.Config, groups []*listener.Group, srv *gateway.Server, m *metrics.Metrics) error {
	var hsErrs *prometheus.CounterVec
	var challenges []func(*fasthttp.RequestCtx) bool // HTTP-01, for the plain listeners
	tlsEdges := make([]*gateway.TLSListener, len(cfg.Listen))
	for i, l := range cfg.Listen {
		if l.TLS == nil {
			continue
		}
		t, challenge, err := e.tlsListener(l, cfg.Server, m, &hsErrs)
		if err != nil {
			return err
		}
		tlsEdges[i] = t
		if challenge != nil {
			challenges = append(challenges, challenge)
		}
	}
	for i, l := range cfg.Listen {
		var edge gateway.Edge
		if l.ProxyProtocol {
			edge.ProxyProtocol = cfg.Server.ReadTimeout
		}
		if l.RedirectHTTPS {
			edge.RedirectPort = httpsPort(cfg, groups)
		}
		if l.TLS != nil {
			edge.TLS, edge.HSTS = tlsEdges[i], l.TLS.HSTS.Header()
		} else if len(challenges) > 0 {
			// HTTP-01 tokens of the first listener with acme; the others
			// are validated over TLS-ALPN-01.
			edge.Challenge = challenges[0]
		}
		srv.SetEdge(groups[i], edge)
	}
	return nil
}

// tlsListener builds the TLS side of one listener: static certificates,
// the ACME manager (and its HTTP-01 handler for the plain listeners), the
// handshake error counters.
func (e *edges) tlsListener(l config.Listen, sc config.Server, m *metrics.Metrics,
	hsErrs **prometheus.CounterVec) (*gateway.TLSListener, func(*fasthttp.RequestCtx) bool, error) {
	var certs *tlsconf.Certs
	if len(l.TLS.Certificates) > 0 {
		c, err := tlsconf.LoadCerts(l.TLS.Certificates)
		if err != nil {
			return nil, nil, err
		}
		certs = c
		e.certs = append(e.certs, certs)
	}
	var mgr *autocert.Manager
	var challenge func(*fasthttp.RequestCtx) bool
	if l.TLS.ACME != nil {
		var err error
		if mgr, err = tlsconf.NewACME(l.TLS.ACME); err != nil {
			return nil, nil, err
		}
		challenge = gateway.HTTPChallenge(mgr.HTTPHandler(nil))
	}
	if *hsErrs == nil {
		*hsErrs = metrics.NewTLSHandshakeErrors(m)
	}
	t := &gateway.TLSListener{Config: tlsconf.ServerConfig(l.TLS, certs, mgr), Timeout: sc.ReadTimeout}
	e.configs = append(e.configs, t.Config)
	for r := range tlsconf.NumReasons {
		t.Errors[r] = (*hsErrs).WithLabelValues(l.Address, tlsconf.Reason(r).String())
	}
	return t, challenge, nil
}

// setupAdmin guards the admin server and, with admin.tls, returns ln wrapped
// in TLS. The caller keeps the plain ln for fd handoff.
func (e *edges) setupAdmin(a config.Admin, as *admin.Server, ln net.Listener, reg prometheus.Registerer, log *slog.Logger) (net.Listener, error) {
	g, err := admin.NewGuard(a, reg)
	if err != nil {
		return nil, err
	}
	e.guard = g
	as.SetGuard(g)
	// Per-connection errors (failed handshakes, scanners) only at debug.
	as.SetErrorLog(slog.NewLogLogger(log.Handler(), slog.LevelDebug))
	if a.TLS == nil {
		return ln, nil
	}
	certs, err := tlsconf.LoadCerts(a.TLS.Certificates)
	if err != nil {
		return nil, err
	}
	e.certs = append(e.certs, certs)
	cfg := tlsconf.ServerConfig(a.TLS, certs, nil)
	e.configs = append(e.configs, cfg)
	return tls.NewListener(ln, cfg), nil
}

// reload re-reads every certificate and secret file. Whatever fails keeps
// its old value; the errors are joined.
func (e *edges) reload() error {
	var errs []error
	for _, c := range e.certs {
		errs = append(errs, c.Reload())
	}
	if e.guard != nil {
		errs = append(errs, e.guard.Reload())
	}
	return errors.Join(errs...)
}

// httpsPort is the port redirect_https sends clients to: the bound port of
// the first TLS listener (its real port when configured as 0).
func httpsPort(cfg *config.Config, groups []*listener.Group) string {
	for i, l := range cfg.Listen {
		if l.TLS != nil {
			_, port, _ := net.SplitHostPort(groups[i].Addr().String())
			return port
		}
	}
	return ""
}

// unlined returns c's listen and admin sections without the line numbers
// kept for certificate errors, so that a reload compares what they say, not
// where in the file they are.
func unlined(c *config.Config) []any {
	strip := func(t *config.TLS) *config.TLS {
		if t == nil {
			return nil
		}
		cp := *t
		cp.Certificates = append([]config.Certificate(nil), t.Certificates...)
		for i := range cp.Certificates {
			cp.Certificates[i].Line = 0
		}
		return &cp
	}
	ls := append([]config.Listen(nil), c.Listen...)
	for i := range ls {
		ls[i].TLS = strip(ls[i].TLS)
	}
	a := c.Admin
	a.TLS = strip(a.TLS)
	return []any{ls, a}
}
