// Package dnstest runs a real DNS server on loopback for tests: UDP and TCP
// on one port, answering A, AAAA and SRV queries from records the test sets
// and changes while it runs.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// SRV is one SRV record's data.
type SRV struct {
	Target string
	Port   uint16
}

// Server is a DNS server on 127.0.0.1. Its methods are safe for concurrent
// use.
type Server struct {
	// Addr is "127.0.0.1:PORT", where it serves UDP and TCP.
	Addr string

	mu      sync.Mutex
	addrs   map[string][]netip.Addr // lowercased FQDN → A/AAAA
	srvs    map[string][]SRV
	failing map[string]bool // names answered SERVFAIL

	queries atomic.Int64
}

// Start starts a server with no records; it stops at cleanup. Every name
// it has no record for is answered NXDOMAIN.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{addrs: map[string][]netip.Addr{}, srvs: map[string][]SRV{}, failing: map[string]bool{}}
	var udp net.PacketConn
	var tcp net.Listener
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: listening on UDP: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String()) // the same port number
		if err == nil {
			udp, tcp = pc, ln
			break
		}
		pc.Close()
		if attempt == 10 {
			t.Fatalf("dnstest: no port free on both UDP and TCP: %v", err)
		}
	}
	s.Addr = udp.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	servers := []*dns.Server{{PacketConn: udp, Handler: h}, {Listener: tcp, Handler: h}}
	var started sync.WaitGroup
	for _, srv := range servers {
		started.Add(1)
		srv.NotifyStartedFunc = started.Done
		go func() { _ = srv.ActivateAndServe() }()
	}
	started.Wait()
	t.Cleanup(func() {
		for _, srv := range servers {
			_ = srv.Shutdown()
		}
	})
	return s
}

// SetAddrs makes name resolve to addrs (A for IPv4, AAAA for IPv6); with
// none the name exists without addresses (NOERROR, no answer).
func (s *Server) SetAddrs(name string, addrs ...string) {
	ips := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		ips[i] = netip.MustParseAddr(a)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs[fqdn(name)] = ips
}

// SetSRV sets the SRV records of name.
func (s *Server) SetSRV(name string, records ...SRV) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.srvs[fqdn(name)] = records
}

// Remove deletes every record of name: it is answered NXDOMAIN.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.addrs, fqdn(name))
	delete(s.srvs, fqdn(name))
}

// SetFailing makes every query for name answer SERVFAIL while on.
func (s *Server) SetFailing(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing[fqdn(name)] = on
}

// Queries returns how many queries the server answered.
func (s *Server) Queries() int64 { return s.queries.Load() }

func fqdn(name string) string { return dns.Fqdn(strings.ToLower(name)) }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 1}
	}
	s.mu.Lock()
	addrs, hasAddrs := s.addrs[name]
	srvs, hasSRV := s.srvs[name]
	failing := s.failing[name]
	s.mu.Unlock()
	switch {
	case failing:
		m.Rcode = dns.RcodeServerFailure
	case len(addrs) == 0 && len(srvs) == 0:
		if !hasAddrs && !hasSRV {
			m.Rcode = dns.RcodeNameError
		}
	case q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA:
		for _, a := range addrs {
			if a.Is4() && q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
			} else if a.Is6() && q.Qtype == dns.TypeAAAA {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		}
	case q.Qtype == dns.TypeSRV:
		for _, r := range srvs {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: 10, Weight: 1,
				Port: r.Port, Target: dns.Fqdn(r.Target)})
		}
	}
	_ = w.WriteMsg(m)
}
