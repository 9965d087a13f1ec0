package gateway

import (
	"net"
	"sync"

	"github.com/valyala/fasthttp"

	"shardgate/upstream"
)

// scratch holds what one request needs beyond the RequestCtx. It is pooled,
// so nothing here may outlive the handler.
type scratch struct {
	host  []byte
	names [][]byte // headers to drop (listed in Connection or named with "_")
	buf   []byte   // backing store for names
	xff   []byte
	uri   fasthttp.URI
	conn  net.Conn

	// The exchange a worker runs for this request; see exchanger.
	pool     *upstream.Pool
	backend  *upstream.Backend
	ctx      *fasthttp.RequestCtx
	err      error
	panicked any
	done     chan struct{} // buffered, capacity 1

	bodies bodyState // see body.go
}

// Gone reports whether the client closed its connection; the queue asks.
func (s *scratch) Gone() bool { return clientGone(s.conn) }

// addName records a header name to drop, copied into s.buf.
func (s *scratch) addName(name []byte) {
	start := len(s.buf)
	s.buf = append(s.buf, name...)
	s.names = append(s.names, s.buf[start:len(s.buf):len(s.buf)])
}

var scratchPool = sync.Pool{New: func() any { return &scratch{done: make(chan struct{}, 1)} }}
