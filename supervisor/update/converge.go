package update

import (
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/supervisor/docker"
)

// converge makes the containers of every service match target, in the configured order: one
// running container named <install>-<service> from the target's image that passed its health
// gate, and no other container of that service. It starts from what the Engine shows, not from
// what the journal says was done, so it is the forward swap, the rollback and the crash recovery
// alike, and running it twice does nothing the second time. rep, when not nil, gets each swap's
// timings. recreate swaps even containers that are right already (a restore changed the config
// they read at start).
func (u *Updater) converge(ctx context.Context, j *Journal, target State, rep *Report, recreate bool) error {
	for _, svc := range u.cfg.Services {
		if err := u.convergeService(ctx, j, svc, target, rep, recreate); err != nil {
			return fmt.Errorf("%s: %w", svc.Name, err)
		}
		if err := u.crash("swap:" + svc.Name); err != nil {
			return err
		}
	}
	return nil
}

func (u *Updater) convergeService(ctx context.Context, j *Journal, svc Service, target State, rep *Report, recreate bool) error {
	owned, err := u.engine.List(ctx)
	if err != nil {
		return err
	}
	var mine []docker.Container
	for _, c := range owned {
		if c.Service == svc.Name && c.Role == docker.RoleService {
			mine = append(mine, c)
		}
	}
	canonical := docker.ContainerName(u.engine.Install(), svc.Name)
	want, wanted := target.Services[svc.Name]
	if !wanted {
		for _, c := range mine {
			if err := u.engine.Remove(ctx, c.ID); err != nil {
				return err
			}
		}
		return nil
	}

	// Already right: a running container of the wanted image (the old copy during a start-first
	// rollback, or everything after a crash during a commit). Only the extras go.
	for _, c := range mine {
		if recreate || c.Image != want.Image || c.State != "running" || c.Health == "unhealthy" {
			continue
		}
		for _, o := range mine {
			if o.ID != c.ID {
				if err := u.engine.Remove(ctx, o.ID); err != nil {
					return err
				}
			}
		}
		if c.Name != canonical {
			if err := u.engine.Rename(ctx, c.ID, canonical); err != nil {
				return err
			}
		}
		return nil
	}

	ref, err := name.NewDigest(want.Image)
	if err != nil {
		return err
	}
	spec := docker.Spec{Service: svc.Name, Version: target.Version.String(), Image: ref, ImageID: want.ImageID,
		Cmd: svc.Cmd, Env: svc.Env, Mounts: svc.Mounts, Network: svc.Network,
		HealthInterval: u.cfg.HealthInterval, StopTimeout: u.cfg.StopTimeout}
	sr := ServiceReport{Service: svc.Name, StartFirst: svc.StartFirst}
	log := u.log.WithFields(logrus.Fields{"service": svc.Name, "version": target.Version.String()})

	if svc.StartFirst {
		// The running canonical copy serves until the new one is healthy; anything else (a -next
		// left by a crash, a stopped copy) goes now.
		var old []docker.Container
		for _, c := range mine {
			if c.Name == canonical && c.State == "running" {
				old = append(old, c)
				continue
			}
			if err := u.engine.Remove(ctx, c.ID); err != nil {
				return err
			}
		}
		spec.Name = canonical + "-next"
		if len(old) > 0 {
			u.emit(j, "swap", svc.Name, fmt.Sprintf("starting %s next to the running copy", target.Version))
		} else {
			u.emit(j, "swap", svc.Name, fmt.Sprintf("starting %s", target.Version))
		}
		id, healthy, err := u.startGated(ctx, spec)
		if err != nil {
			return err
		}
		sr.Healthy = healthy
		for _, c := range old {
			if err := u.engine.Stop(ctx, c.ID, u.cfg.StopTimeout); err != nil {
				log.WithError(err).Warn("old copy did not stop cleanly; removing it")
			}
			if err := u.engine.Remove(ctx, c.ID); err != nil {
				return err
			}
		}
		if err := u.engine.Rename(ctx, id, canonical); err != nil {
			return err
		}
	} else {
		t0 := u.now()
		wasRunning := false
		for _, c := range mine {
			wasRunning = wasRunning || c.State == "running"
			if err := u.engine.Stop(ctx, c.ID, u.cfg.StopTimeout); err != nil {
				log.WithError(err).Warn("old copy did not stop cleanly; removing it")
			}
			if err := u.engine.Remove(ctx, c.ID); err != nil {
				return err
			}
		}
		spec.Name = canonical
		if wasRunning {
			u.emit(j, "swap", svc.Name, fmt.Sprintf("old copy stopped; starting %s", target.Version))
		} else {
			u.emit(j, "swap", svc.Name, fmt.Sprintf("starting %s", target.Version))
		}
		_, healthy, err := u.startGated(ctx, spec)
		if err != nil {
			return err
		}
		sr.Healthy = healthy
		if wasRunning {
			sr.Unavailable = u.now().Sub(t0)
		}
	}
	u.emit(j, "swap", svc.Name, fmt.Sprintf("%s healthy after %s (unavailable %s)", target.Version,
		sr.Healthy.Round(time.Millisecond), sr.Unavailable.Round(time.Millisecond)))
	if rep != nil {
		rep.Services = append(rep.Services, sr)
	}
	return nil
}

// startGated creates and starts spec and waits for its health gate; a container that fails the
// gate is removed (its logs are in the error).
func (u *Updater) startGated(ctx context.Context, spec docker.Spec) (id string, healthy time.Duration, err error) {
	id, err = u.engine.Create(ctx, spec)
	if err != nil {
		return "", 0, err
	}
	t0 := u.now()
	err = u.engine.Start(ctx, id)
	if err == nil {
		err = u.engine.WaitHealthy(ctx, id, u.cfg.HealthTimeout, u.cfg.Settle)
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := u.engine.Remove(rctx, id); rerr != nil {
			u.log.WithError(rerr).WithField("container", spec.Name).Warn("failed container not removed; the rollback removes it")
		}
		return "", 0, err
	}
	return id, u.now().Sub(t0), nil
}
