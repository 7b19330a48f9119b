package update

import (
	"time"

	"github.com/ringbridge/ringbridge/supervisor/docker"
)

// Event is one progress report of an update, for admin's live view (published on
// supervisor.events) and the CLI.
type Event struct {
	Update  string               `json:"update,omitempty"` // the journal ID
	To      string               `json:"to,omitempty"`     // the version being installed
	Time    time.Time            `json:"time"`
	Stage   string               `json:"stage"` // verify, pull, backup, migrate, config, swap, commit, rollback
	Service string               `json:"service,omitempty"`
	Message string               `json:"message"`
	Pull    *docker.PullProgress `json:"pull,omitempty"`
}

// Events receives an update's events. Emit is called from several goroutines at once (the pulls
// run in parallel) and must not block: a slow consumer must not hold up a swap, so an
// implementation drops or buffers.
type Events interface {
	Emit(Event)
}

// EventsFunc adapts a function to Events.
type EventsFunc func(Event)

// Emit calls f.
func (f EventsFunc) Emit(e Event) { f(e) }
