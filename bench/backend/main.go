// Command backend is the fast HTTP backend of the shardgate benchmark: it
// answers every request with a small fixed body, so that what the benchmark
// measures is the proxy in front of it. It runs as a process of its own so
// its CPU time is not counted as the proxy's.
//
//	backend -addr 127.0.0.1:8001
package main

import (
	"flag"
	"log"

	"github.com/valyala/fasthttp"
)

var body = []byte("hello from the shardgate bench backend\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	s := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain")
			ctx.SetBody(body)
		},
		Name:        "bench-backend",
		Concurrency: 1 << 20,
	}
	if err := s.ListenAndServe(*addr); err != nil {
		log.Fatalf("backend: %v", err)
	}
}
