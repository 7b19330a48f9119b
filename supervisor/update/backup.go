package update

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ringbridge/ringbridge/supervisor/docker"
)

const backupsDir = "backups"

// BackupManifest describes one backup directory.
type BackupManifest struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Version string    `json:"version"` // the installed version it was taken of
	Reason  string    `json:"reason"`
	Config  bool      `json:"config"`
	Volumes []string  `json:"volumes"`
}

func (u *Updater) backupPath(id string, parts ...string) string {
	return filepath.Join(append([]string{u.cfg.DataDir, backupsDir, id}, parts...)...)
}

// backupStep takes the pre-update backup: the config file and each service's volumes.
func (u *Updater) backupStep(ctx context.Context, j *Journal) error {
	m, err := u.backup(ctx, j.ID, "before update to "+j.To.Version.String(), j.From, j.To)
	if err != nil {
		return err
	}
	j.Backup = m.ID
	u.emit(j, "backup", "", fmt.Sprintf("backup %s: config %v, volumes %v", m.ID, m.Config, m.Volumes))
	return nil
}

// backup writes a backup of the config and the volumes of every service. A volume is read through
// a helper made from the image of its service in from (or to, on a first install).
func (u *Updater) backup(ctx context.Context, id, reason string, from, to State) (*BackupManifest, error) {
	dir := u.backupPath(id)
	if err := os.MkdirAll(filepath.Join(dir, "volumes"), 0o700); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	m := &BackupManifest{ID: id, Created: u.now(), Version: from.Version.String(), Reason: reason, Volumes: []string{}}
	if u.cfg.ConfigPath != "" {
		body, err := os.ReadFile(u.cfg.ConfigPath)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("backup: reading the config: %w", err)
		default:
			if err := writeFile(filepath.Join(dir, "config.yaml"), body, 0o600); err != nil {
				return nil, fmt.Errorf("backup: %w", err)
			}
			m.Config = true
		}
	}
	for _, svc := range u.cfg.Services {
		img := imageOf(from, svc.Name)
		if img == "" {
			img = imageOf(to, svc.Name)
		}
		for _, vol := range svc.Volumes {
			if containsString(m.Volumes, vol) {
				continue
			}
			n, err := u.backupVolume(ctx, vol, img, filepath.Join(dir, "volumes", vol+".tar"))
			if docker.IsNotFound(err) {
				continue // nothing to back up yet
			}
			if err != nil {
				return nil, fmt.Errorf("backup of volume %s: %w", vol, err)
			}
			u.log.WithField("volume", vol).WithField("bytes", n).Debug("volume in backup")
			m.Volumes = append(m.Volumes, vol)
		}
	}
	if err := writeJSON(filepath.Join(dir, "manifest.json"), m); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

func imageOf(st State, svc string) string {
	if s, ok := st.Services[svc]; ok {
		if s.ImageID != "" {
			return s.ImageID
		}
		return s.Image
	}
	return ""
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (u *Updater) backupVolume(ctx context.Context, vol, image, path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := u.engine.BackupVolume(ctx, vol, image, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return n, err
}

func (u *Updater) readManifest(id string) (*BackupManifest, error) {
	var m BackupManifest
	found, err := readJSON(u.backupPath(id, "manifest.json"), &m)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("backup %s is incomplete or missing", id)
	}
	return &m, nil
}

// restoreConfig puts the backup's config file back in place.
func (u *Updater) restoreConfig(id string) error {
	m, err := u.readManifest(id)
	if err != nil {
		return err
	}
	if !m.Config || u.cfg.ConfigPath == "" {
		return nil
	}
	body, err := os.ReadFile(u.backupPath(id, "config.yaml"))
	if err != nil {
		return fmt.Errorf("restoring the config: %w", err)
	}
	if err := writeFile(u.cfg.ConfigPath, body, 0o600); err != nil {
		return fmt.Errorf("restoring the config: %w", err)
	}
	return nil
}

// restoreVolumes puts the volumes of backup id back: the containers of the services that use them
// are removed first (converge recreates them afterwards).
func (u *Updater) restoreVolumes(ctx context.Context, j *Journal, id string) error {
	m, err := u.readManifest(id)
	if err != nil {
		return err
	}
	if len(m.Volumes) == 0 {
		return nil
	}
	owned, err := u.engine.List(ctx)
	if err != nil {
		return err
	}
	for _, svc := range u.cfg.Services {
		if !usesAny(svc.Volumes, m.Volumes) {
			continue
		}
		for _, c := range owned {
			if c.Service == svc.Name && c.Role == docker.RoleService {
				if err := u.engine.Remove(ctx, c.ID); err != nil {
					return err
				}
			}
		}
	}
	for _, vol := range m.Volumes {
		img := ""
		for _, svc := range u.cfg.Services {
			if containsString(svc.Volumes, vol) {
				if img = imageOf(j.From, svc.Name); img == "" {
					img = imageOf(j.To, svc.Name)
				}
				break
			}
		}
		f, err := os.Open(u.backupPath(id, "volumes", vol+".tar"))
		if err != nil {
			return fmt.Errorf("restoring volume %s: %w", vol, err)
		}
		err = u.engine.RestoreVolume(ctx, vol, img, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("restoring volume %s: %w", vol, err)
		}
		u.emit(j, "rollback", "", "volume "+vol+" restored from backup "+id)
	}
	return nil
}

func usesAny(have, want []string) bool {
	for _, v := range have {
		if containsString(want, v) {
			return true
		}
	}
	return false
}

// Backups lists the backups, newest first.
func (u *Updater) Backups() ([]BackupManifest, error) {
	entries, err := os.ReadDir(filepath.Join(u.cfg.DataDir, backupsDir))
	if err != nil {
		return nil, err
	}
	var out []BackupManifest
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		m, err := u.readManifest(e.Name())
		if err != nil {
			continue // incomplete: pruned below
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Created.After(out[k].Created) })
	return out, nil
}

// pruneBackups keeps the newest BackupKeep backups (and drops incomplete ones).
func (u *Updater) pruneBackups() error {
	keep, err := u.Backups()
	if err != nil {
		return err
	}
	ids := map[string]bool{}
	for i, m := range keep {
		if i < u.cfg.BackupKeep {
			ids[m.ID] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(u.cfg.DataDir, backupsDir))
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() && !ids[e.Name()] {
			errs = append(errs, os.RemoveAll(filepath.Join(u.cfg.DataDir, backupsDir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// Backup takes a backup of the installed release's config and volumes now (on request, or on a
// schedule), keeping the newest BackupKeep.
func (u *Updater) Backup(ctx context.Context, reason string) (*BackupManifest, error) {
	unlock, err := u.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := LoadState(u.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	m, err := u.backup(ctx, newID(), reason, st, st)
	if err != nil {
		return nil, err
	}
	if err := u.pruneBackups(); err != nil {
		u.log.WithError(err).Warn("old backups not pruned")
	}
	return m, nil
}

// Restore puts backup id's config and volumes back and restarts the services on them. The backup
// must be of the installed version (an older version's config may not suit this release: revert
// first). It is journaled like an update: a backup of the current config and volumes is taken
// first, and a failure puts them back.
func (u *Updater) Restore(ctx context.Context, id string) (*Report, error) {
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
	m, err := u.readManifest(id)
	if err != nil {
		return nil, err
	}
	cur, err := LoadState(u.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if m.Version != cur.Version.String() {
		return nil, fmt.Errorf("backup %s was taken with version %s and %s is installed: revert to %s first, or pick a backup of %s",
			id, m.Version, cur.Version, m.Version, cur.Version)
	}
	start := u.now()
	rep := &Report{From: cur.Version, To: cur.Version, Stages: map[string]time.Duration{}}
	j := &Journal{ID: newID(), Phase: PhaseApplying, From: cur, To: cur, Restore: true, Started: start}
	u.emit(j, "restore", "", fmt.Sprintf("restoring backup %s (%s)", id, m.Reason))
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
			j.ConfigWritten = true
			if err := u.writeJournal(j); err != nil {
				return err
			}
			return u.restoreConfig(id)
		}},
		{"volumes", func() error {
			j.Migrated = true // a rollback puts the volumes of the backup just taken back
			if err := u.writeJournal(j); err != nil {
				return err
			}
			return u.restoreVolumes(ctx, j, id)
		}},
		{"swap", func() error { return u.converge(ctx, j, cur, rep, true) }},
	}
	if err := u.runSteps(ctx, j, rep, stage, steps); err != nil {
		return rep, err
	}
	if err := u.commit(ctx, j); err != nil {
		return rep, err
	}
	rep.Took = u.now().Sub(start)
	u.emit(j, "commit", "", fmt.Sprintf("backup %s restored in %s", id, rep.Took.Round(time.Millisecond)))
	return rep, nil
}
