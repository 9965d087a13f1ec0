package tlsconf

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"time"
)

// ticketPeriod is how long one session ticket key encrypts new tickets;
// tickets stay valid for ticketKeep periods (so 12 to 36 hours).
const (
	ticketPeriod = 12 * time.Hour
	ticketKeep   = 3
)

// TicketKeys derives the session ticket keys of every TLS config from one
// secret seed and the clock: the key of period n is HMAC-SHA256(seed, n).
// Every process that holds the same seed (shards share the configs; a
// process started for a binary upgrade inherits the seed) issues and accepts
// the same tickets, and all rotate together at each period boundary without
// talking to each other. Safe for concurrent use.
type TicketKeys struct {
	seed [32]byte
}

// NewTicketKeys returns keys derived from seed (32 bytes), or from a fresh
// random seed when seed is nil.
func NewTicketKeys(seed []byte) (*TicketKeys, error) {
	k := &TicketKeys{}
	switch {
	case seed == nil:
		if _, err := rand.Read(k.seed[:]); err != nil {
			return nil, fmt.Errorf("tlsconf: ticket seed: %w", err)
		}
	case len(seed) != len(k.seed):
		return nil, fmt.Errorf("tlsconf: ticket seed of %d bytes, want %d", len(seed), len(k.seed))
	default:
		copy(k.seed[:], seed)
	}
	return k, nil
}

// Keys returns the keys in force at t: the current period's first (it
// encrypts new tickets), then the previous ones (they still decrypt).
func (k *TicketKeys) Keys(t time.Time) [][32]byte {
	n := t.Unix() / int64(ticketPeriod/time.Second)
	keys := make([][32]byte, ticketKeep)
	for i := range keys {
		m := hmac.New(sha256.New, k.seed[:])
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n-int64(i)))
		m.Write([]byte("shardgate session ticket key "))
		m.Write(b[:])
		copy(keys[i][:], m.Sum(nil))
	}
	return keys
}

// Apply sets the keys in force now on every config. Call it before the
// configs serve; Run keeps them current.
func (k *TicketKeys) Apply(cfgs []*tls.Config) {
	keys := k.Keys(time.Now())
	for _, c := range cfgs {
		c.SetSessionTicketKeys(keys)
	}
}

// Run applies the keys again at every period boundary until ctx ends.
func (k *TicketKeys) Run(ctx context.Context, cfgs []*tls.Config) {
	for {
		now := time.Now()
		next := now.Truncate(ticketPeriod).Add(ticketPeriod)
		t := time.NewTimer(next.Sub(now) + time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		k.Apply(cfgs)
	}
}

// File returns an anonymous in-memory file holding the seed, to hand to a
// process started for a binary upgrade (never on disk, never in the
// environment).
func (k *TicketKeys) File() (*os.File, error) {
	f, err := seedFile()
	if err != nil {
		return nil, fmt.Errorf("tlsconf: ticket seed file: %w", err)
	}
	if _, err := f.Write(k.seed[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("tlsconf: ticket seed file: %w", err)
	}
	return f, nil
}

// ReadSeed reads a seed written by File from the start of f.
func ReadSeed(f *os.File) ([]byte, error) {
	seed := make([]byte, 32)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, 32), seed); err != nil {
		return nil, fmt.Errorf("tlsconf: reading the ticket seed: %w", err)
	}
	return seed, nil
}
