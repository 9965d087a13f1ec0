package tlsconf

import (
	"bytes"
	"testing"
	"time"
)

func TestTicketKeys(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	a, _ := NewTicketKeys(seed)
	b, _ := NewTicketKeys(seed)
	other, _ := NewTicketKeys(nil)
	now := time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC)
	ka, kb, ko := a.Keys(now), b.Keys(now), other.Keys(now)
	if len(ka) != ticketKeep || ka[0] != kb[0] || ka[2] != kb[2] {
		t.Errorf("the same seed gives other keys: %x / %x", ka[0], kb[0])
	}
	if ka[0] == ko[0] {
		t.Error("a random seed gives the same keys")
	}
	if ka[0] == ka[1] || ka[1] == ka[2] {
		t.Error("keys of different periods are equal")
	}
	later := a.Keys(now.Add(ticketPeriod))
	if later[1] != ka[0] || later[2] != ka[1] {
		t.Error("after one period the current key must become the second")
	}
	if _, err := NewTicketKeys([]byte("short")); err == nil {
		t.Error("NewTicketKeys accepted a short seed")
	}
	f, err := a.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := ReadSeed(f)
	if err != nil || !bytes.Equal(got, seed) {
		t.Errorf("ReadSeed(File()) = %x, %v; want the seed", got, err)
	}
}
