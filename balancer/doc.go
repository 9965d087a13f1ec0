// Package balancer chooses which backend of a pool serves the next request.
//
// A policy sees each backend only through the small read-only [Backend]
// interface (in-flight count, limit, weight, availability), so the package
// does not depend on how backends are implemented. Every policy is safe for
// concurrent use, takes no lock and allocates nothing per call: state is a
// typed atomic counter at most, and Pick reads the backends afresh each time.
// Backends that are not Available are never chosen; Pick returns -1 when no
// backend is Available.
//
// # Load score
//
// least_inflight and p2c compare backends by their load score, the fraction
//
//	inflight / limit    for a backend with a concurrency limit
//	inflight / weight   for an unlimited backend (Limit() == 0)
//
// Fractions are compared exactly by cross multiplication in 128-bit
// arithmetic, so neither rounding nor overflow can reorder two backends.
// For a limited backend the limit already states its capacity, so its weight
// does not enter the score; weight only shares out ties (see below).
//
// # Policies
//
// least_inflight ([LeastInflight], the default) picks the Available backend
// with the lowest load score. Backends that tie for the lowest score take
// turns: an atomic counter walks through them in proportion to their weights,
// so an idle pool (every score 0) is spread over all its backends instead of
// being herded onto the first one, and a backend with weight 3 gets three
// turns for every one a weight-1 backend gets. The turn is counted among the
// tied backends only, so a backend next to an unavailable one does not inherit
// its share.
//
// p2c ([P2C], power of two choices) draws two distinct Available backends at
// random, each with probability proportional to its weight, and picks the one
// with the lower load score (the first drawn on a tie). With a single
// Available backend it picks that one. It looks at only two backends' load, so
// concurrent callers are less likely to pile onto the same backend than with
// least_inflight when the load information is a moment old.
//
// round_robin ([RoundRobin]) hands out turns in proportion to weight, driven
// by one atomic counter. Turns are interleaved (weights 2 and 1 give A B A,
// not A A B), and unavailable backends are left out of the cycle. Load is
// ignored.
//
// random ([Random]) picks an Available backend at random with probability
// proportional to its weight. Load is ignored.
//
// # Why least_inflight is the default
//
// The backends shardgate fronts run a fixed number of requests at once
// (gunicorn sync or gthread workers, Puma, PHP-FPM). Their response times vary
// by orders of magnitude between endpoints, so counting requests handed out
// (round_robin, random) says little about how busy a backend is: one slow
// request can hold a worker while its neighbours stay idle. The number of
// requests in flight relative to the backend's limit is exactly the fraction
// of its workers that are busy, and shardgate knows it exactly because every
// request passes through it. Picking the lowest fraction sends each request to
// the backend most likely to start it at once, and naturally gives a faster
// backend more requests, since it frees its slots sooner. With the few
// backends of a typical pool a full scan is cheap; p2c is the alternative for
// large pools, or when many gateways share the same backends.
//
// # Weights
//
// Weight() is expected to be at least 1. Policies treat a smaller weight as 1
// and a weight above 1<<32 as 1<<32, so no sum of weights can overflow.
package balancer
