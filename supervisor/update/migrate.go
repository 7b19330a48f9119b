package update

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/supervisor/docker"
	"github.com/ringbridge/ringbridge/supervisor/release"
)

// migrateTarget is where the config copy sits in the migration container: /tmp exists and is
// writable in every ringbridge image.
const migrateTarget = "/tmp/config.yaml"

// migrateStep runs the new release's config migration on a copy of the config, in a container of
// one of the new images (every service binary has migrate-config), and returns the migrated
// bytes; nil when the release carries no migration or there is no config.
func (u *Updater) migrateStep(ctx context.Context, j *Journal, rel *release.Release) ([]byte, error) {
	if !rel.ConfigMigration || u.cfg.ConfigPath == "" {
		return nil, nil
	}
	body, err := os.ReadFile(u.cfg.ConfigPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	svc := u.cfg.Services[0].Name
	img := imageOf(j.To, svc)
	info, err := u.engine.Image(ctx, img)
	if err != nil {
		return nil, err
	}
	uid, gid := imageUser(info.User)
	u.emit(j, "migrate", svc, "migrating a copy of the config with "+svc+" "+j.To.Version.String())
	res, err := u.engine.RunJob(ctx, docker.Job{
		Image:   img,
		Cmd:     []string{"migrate-config", "--in-place", migrateTarget},
		Inputs:  map[string]docker.InputFile{migrateTarget: {Body: body, Mode: 0o600, UID: uid, GID: gid}},
		Outputs: []string{migrateTarget},
		Timeout: 2 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("the config migration of %s exited with code %d: %s", j.To.Version, res.ExitCode, strings.TrimSpace(string(res.Logs)))
	}
	j.Migrated = true
	return res.Outputs[migrateTarget], nil
}

// imageUser reads an image's USER ("65534:65534", "65534") as numbers; names (which a scratch image
// cannot resolve anyway) and empty give root.
func imageUser(user string) (uid, gid int) {
	us, gs, _ := strings.Cut(user, ":")
	uid, err := strconv.Atoi(us)
	if err != nil {
		return 0, 0
	}
	if gid, err = strconv.Atoi(gs); err != nil {
		gid = uid
	}
	return uid, gid
}

// configStep puts the migrated config in place of the live one (atomically); the backup holds the
// old one for a rollback.
func (u *Updater) configStep(j *Journal, migrated []byte) error {
	if migrated == nil {
		return nil
	}
	// Journaled before the write: a crash between the two restores a config that was not
	// changed (harmless), never leaves a changed one unrestored.
	j.ConfigWritten = true
	if err := u.writeJournal(j); err != nil {
		return err
	}
	if err := writeFile(u.cfg.ConfigPath, migrated, 0o600); err != nil {
		return err
	}
	u.emit(j, "config", "", "migrated config in place")
	return nil
}
