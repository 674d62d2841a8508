package testee

import (
	"fmt"
	"sync"
)

// Holder keeps the jobs a testee was asked to hold (the lock op) until release: one copy
// of that bookkeeping for every library, whatever its job type and its way to unlock.
type Holder[J any] struct {
	mu   sync.Mutex
	jobs map[int64]J
	done func(J)
}

// NewHolder returns an empty Holder that unlocks a job with done.
func NewHolder[J any](done func(J)) *Holder[J] {
	return &Holder[J]{jobs: map[int64]J{}, done: done}
}

// Keep holds job under its id.
func (h *Holder[J]) Keep(id int64, job J) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.jobs[id] = job
}

// Release unlocks the held job id, or says that it is not held.
func (h *Holder[J]) Release(id int64) error {
	h.mu.Lock()
	job, ok := h.jobs[id]
	delete(h.jobs, id)
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("job %d is not held by this testee", id)
	}
	h.done(job)
	return nil
}

// ReleaseAll unlocks every held job.
func (h *Holder[J]) ReleaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, job := range h.jobs {
		h.done(job)
		delete(h.jobs, id)
	}
}
