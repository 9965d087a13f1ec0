package upstream

import "time"

// Transition is one change of a backend's rotation state.
type Transition struct {
	Time   time.Time
	Up     bool   // in rotation after the change
	Reason string // why, as Backend.State gives it
}

// maxTransitions is how many transitions a backend remembers.
const maxTransitions = 16

// transitions is a fixed ring of a backend's last transitions; it is part
// of rotation and protected by rotation.mu.
type transitions struct {
	ring [maxTransitions]Transition
	n    int // transitions recorded so far
}

func (t *transitions) add(tr Transition) {
	t.ring[t.n%maxTransitions] = tr
	t.n++
}

// Transitions returns b's last transitions (at most 16), oldest first.
func (b *Backend) Transitions() []Transition {
	b.rot.mu.Lock()
	defer b.rot.mu.Unlock()
	t := &b.rot.history
	k := min(t.n, maxTransitions)
	out := make([]Transition, 0, k)
	for i := t.n - k; i < t.n; i++ {
		out = append(out, t.ring[i%maxTransitions])
	}
	return out
}

// Answered returns how many responses b gave (any status), as recorded by
// Pool.Answered.
func (b *Backend) Answered() uint64 { return b.rot.answered.Load() }
