package update

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/supervisor/docker"
)

// previousFile records what the last committed update replaced, for Revert.
const previousFile = "previous.json"

// previous is the release a committed update replaced and the backup taken before it.
type previous struct {
	State    State  `json:"state"`
	Backup   string `json:"backup"`
	Migrated bool   `json:"migrated,omitempty"`
}

// ErrNothingToRevert is returned by Revert when no committed update can be undone.
var ErrNothingToRevert = errors.New("no update to revert")

// recordPrevious keeps what j replaced, so the update can be reverted after its commit (a crash
// loop in the watch period); a revert itself cannot be reverted.
func (u *Updater) recordPrevious(j *Journal) error {
	path := filepath.Join(u.cfg.DataDir, previousFile)
	if j.Restore {
		return nil // the release did not change: what a revert would go back to stays
	}
	if j.Revert || j.From.Version.IsZero() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return writeJSON(path, previous{State: j.From, Backup: j.Backup, Migrated: j.Migrated})
}

// Revert puts back the release the last committed update replaced, with the config (and, when
// that update migrated, the volumes) of the backup taken before it: what a crash loop after an
// update calls. It is journaled and rolled back on failure like an update; config changes made
// since that update are lost (they stay in the backup Revert takes first).
func (u *Updater) Revert(ctx context.Context, reason string) (*Report, error) {
	unlock, err := u.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if j, err := LoadJournal(u.cfg.DataDir); err != nil || j != nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("update %s to %s is unfinished: it is finished first", j.ID, j.To.Version)
	}
	var prev previous
	found, err := readJSON(filepath.Join(u.cfg.DataDir, previousFile), &prev)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNothingToRevert
	}
	cur, err := LoadState(u.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	start := u.now()
	rep := &Report{From: cur.Version, To: prev.State.Version, Stages: map[string]time.Duration{}}
	j := &Journal{ID: newID(), Phase: PhaseApplying, From: cur, To: prev.State, Revert: true, Started: start}
	u.emit(j, "revert", "", fmt.Sprintf("reverting %s to %s: %s", cur.Version, prev.State.Version, reason))
	u.log.WithFields(logrus.Fields{"from": cur.Version.String(), "to": prev.State.Version.String(), "reason": reason}).Warn("reverting the last update")
	// The previous images were verified when they were installed and are normally still here.
	for _, svc := range sortedServices(prev.State) {
		if _, err := u.engine.Image(ctx, imageOf(prev.State, svc)); err == nil {
			continue
		}
		if prev.State.Services[svc].ImageID != "" {
			return rep, fmt.Errorf("revert: the image of %s %s is gone from the Engine", svc, prev.State.Version)
		}
		ref, err := name.NewDigest(prev.State.Services[svc].Image)
		if err != nil {
			return rep, err
		}
		if _, err := u.engine.Pull(ctx, ref, nil); err != nil {
			return rep, fmt.Errorf("revert: %w", err)
		}
	}
	stage := func(name string, f func() error) error {
		t0 := u.now()
		err := f()
		rep.Stages[name] = u.now().Sub(t0)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if err := u.writeJournal(j); err != nil {
		return rep, err
	}
	steps := []step{
		{"backup", func() error { return u.backupStep(ctx, j) }},
		{"config", func() error {
			j.ConfigWritten = true // journaled first: a rollback puts the current config back
			if err := u.writeJournal(j); err != nil {
				return err
			}
			return u.restoreConfig(prev.Backup)
		}},
		{"volumes", func() error {
			if !prev.Migrated {
				return nil
			}
			j.Migrated = true
			if err := u.writeJournal(j); err != nil {
				return err
			}
			return u.restoreVolumes(ctx, j, prev.Backup)
		}},
		{"swap", func() error { return u.converge(ctx, j, prev.State, rep, false) }},
	}
	if err := u.runSteps(ctx, j, rep, stage, steps); err != nil {
		return rep, err
	}
	if err := u.commit(ctx, j); err != nil {
		return rep, err
	}
	rep.Took = u.now().Sub(start)
	u.emit(j, "commit", "", fmt.Sprintf("reverted to %s in %s", prev.State.Version, rep.Took.Round(time.Millisecond)))
	return rep, nil
}

// Watch keeps an eye on the services for period after an update, checking every `every`: a
// service container that restarts threshold times, stops, or disappears means the update
// crash-loops, and it is reverted. It returns whether it reverted, and the revert's error.
func (u *Updater) Watch(ctx context.Context, period, every time.Duration, threshold int) (bool, error) {
	base := map[string]int{} // container ID -> restart count when the watch began
	cs, err := u.engine.List(ctx)
	if err != nil {
		return false, err
	}
	for _, c := range cs {
		if c.Role != docker.RoleService {
			continue
		}
		ins, err := u.engine.Inspect(ctx, c.ID)
		if err != nil {
			return false, err
		}
		base[c.ID] = ins.RestartCount
	}
	deadline := time.NewTimer(period)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case <-deadline.C:
			return false, nil
		case <-tick.C:
		}
		for id, n := range base {
			ins, err := u.engine.Inspect(ctx, id)
			reason := ""
			switch {
			case docker.IsNotFound(errors.Unwrap(err)) || docker.IsNotFound(err):
				reason = fmt.Sprintf("container %s disappeared", id[:12])
			case err != nil:
				continue // the Engine may be busy; look again next tick
			case ins.RestartCount-n >= threshold:
				reason = fmt.Sprintf("%s restarted %d times since the update", ins.Name, ins.RestartCount-n)
			case ins.State == "exited" || ins.State == "dead":
				reason = fmt.Sprintf("%s stopped (exit code %d)", ins.Name, ins.ExitCode)
			}
			if reason == "" {
				continue
			}
			_, err = u.Revert(ctx, "crash loop in the watch period: "+reason)
			return true, err
		}
	}
}
