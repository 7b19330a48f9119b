// Package control is the supervisor's interface to admin over RabbitMQ: requests on the queue
// supervisor.rpc (JSON Request, JSON Reply) and update progress published on the exchange
// supervisor.events. Admin asks for versions, never for image names: what runs is decided by the
// signed release index.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/supervisor/retry"
	"github.com/ringbridge/ringbridge/supervisor/update"
)

// Queue is where admin sends requests.
const Queue = "supervisor.rpc"

// The verbs.
const (
	VerbStatus = "status" // what is installed and running
	VerbCheck  = "check"  // the newest release on the channel and the plan to it
	VerbPlan   = "plan"   // the plan to Request.To
	VerbUpdate = "update" // start the update to Request.To (the newest when empty); progress on supervisor.events
	// VerbRollback reverts the last committed update (its release, config and, after a
	// migration, volumes from the backup taken before it); progress on supervisor.events.
	VerbRollback = "rollback"
	VerbBackup   = "backup"  // take a backup now; the reply names it
	VerbRestore  = "restore" // put Request.Backup back (config and volumes) and restart the services
)

// Request is one request from admin.
type Request struct {
	Verb   string `json:"verb"`
	To     string `json:"to,omitempty"`
	Backup string `json:"backup,omitempty"` // for restore
}

// Reply answers a Request. Error is set when it failed, Retry when asking again later may work.
type Reply struct {
	Error  string  `json:"error,omitempty"`
	Retry  bool    `json:"retry,omitempty"`
	Status *Status `json:"status,omitempty"`
	Plan   *Plan   `json:"plan,omitempty"`
	// Started is the version an accepted update goes to.
	Started string `json:"started,omitempty"`
	// Backup names the backup a backup request took.
	Backup string `json:"backup,omitempty"`
}

// Status is what is installed and running.
type Status struct {
	Installed string      `json:"installed"` // "" when nothing is
	Channel   string      `json:"channel"`
	Updating  bool        `json:"updating"`
	Services  []Container `json:"services"`
	// LastError is the last update's failure, if it failed.
	LastError string `json:"last_error,omitempty"`
}

// Container is one service container.
type Container struct {
	Service string `json:"service"`
	Version string `json:"version"`
	State   string `json:"state"`
	Health  string `json:"health,omitempty"`
}

// Plan is a chain of releases from the installed version.
type Plan struct {
	From  string `json:"from"`
	Steps []Step `json:"steps"`
}

// Step is one release of a plan.
type Step struct {
	Version   string `json:"version"`
	Why       string `json:"why"`
	Migration bool   `json:"migration,omitempty"`
	Changelog string `json:"changelog,omitempty"`
}

// Supervisor is what the verbs do.
type Supervisor interface {
	Status(ctx context.Context) (*Status, error)
	Plan(ctx context.Context, to string) (*Plan, error)
	// StartUpdate starts the update to `to` (the newest when empty) and returns at once with the
	// target version; progress goes to the events.
	StartUpdate(ctx context.Context, to string) (string, error)
	// StartRollback starts reverting the last committed update and returns at once.
	StartRollback(ctx context.Context) error
	// Backup takes a backup now and returns its ID.
	Backup(ctx context.Context) (string, error)
	// StartRestore starts restoring backup id and returns at once.
	StartRestore(ctx context.Context, id string) error
}

// Handler answers requests with s. A failure is an error in the Reply, not an RPC error: the
// request was understood, and admin shows the message.
func Handler(s Supervisor, log logrus.FieldLogger) bus.RPCHandler {
	return func(ctx context.Context, d bus.Delivery) ([]byte, error) {
		var req Request
		if err := json.Unmarshal(d.Body, &req); err != nil {
			return json.Marshal(Reply{Error: fmt.Sprintf("request is not JSON {\"verb\":...}: %v", err)})
		}
		var rep Reply
		var err error
		switch req.Verb {
		case VerbStatus:
			rep.Status, err = s.Status(ctx)
		case VerbCheck:
			rep.Plan, err = s.Plan(ctx, "")
		case VerbPlan:
			if req.To == "" {
				err = errors.New("plan needs \"to\": the version to plan for")
			} else {
				rep.Plan, err = s.Plan(ctx, req.To)
			}
		case VerbUpdate:
			rep.Started, err = s.StartUpdate(ctx, req.To)
		case VerbRollback:
			err = s.StartRollback(ctx)
		case VerbBackup:
			rep.Backup, err = s.Backup(ctx)
		case VerbRestore:
			if req.Backup == "" {
				err = errors.New("restore needs \"backup\": the backup's ID")
			} else {
				err = s.StartRestore(ctx, req.Backup)
			}
		default:
			err = fmt.Errorf("unknown verb %q: use status, check, plan, update, rollback, backup or restore", req.Verb)
		}
		if err != nil {
			rep.Error, rep.Retry = err.Error(), retry.Helps(err)
			log.WithError(err).WithField("verb", req.Verb).Warn("request failed")
		}
		return json.Marshal(rep)
	}
}

// Publisher is an update.Events that publishes each event on supervisor.events with routing key
// update.<stage>. It never blocks an update for long: an event the bus cannot take within a
// second is dropped and counted in the log (the update itself is journaled on disk).
type Publisher struct {
	bus *bus.Bus
	log logrus.FieldLogger
}

// NewPublisher publishes on b.
func NewPublisher(b *bus.Bus, log logrus.FieldLogger) *Publisher { return &Publisher{bus: b, log: log} }

// Emit publishes e.
func (p *Publisher) Emit(e update.Event) {
	body, err := json.Marshal(e)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := p.bus.PublishAsync(ctx, bus.ExchangeSupervisorEvents, "update."+e.Stage, bus.Message{Type: "supervisor.update", Body: body}); err != nil {
		p.log.WithError(err).WithField("stage", e.Stage).Debug("progress event dropped")
	}
}
