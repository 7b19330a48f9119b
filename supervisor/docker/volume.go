package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/sirupsen/logrus"
)

// helperMount is where a helper container mounts the volume it backs up or restores; a backup's
// entries are named under it ("data/...") so a restore extracts the same tar at "/".
const helperMount = "/data"

// helper creates, without starting, a container of image (a service image the install already
// has: no other image is pulled) with volume mounted at helperMount, and returns its ID and a
// function that removes it. The Engine mounts a created container's volumes for archive requests,
// so nothing ever runs in it.
func (e *Engine) helper(ctx context.Context, image, vol string) (string, func(), error) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := fmt.Sprintf("%s-helper-%s", e.install, hex.EncodeToString(suffix))
	labels := e.ownerLabels(RoleHelper)
	resp, err := e.api.ContainerCreate(ctx,
		&container.Config{Image: image, Labels: labels, Entrypoint: []string{"/nonexistent-helper-never-runs"}},
		&container.HostConfig{NetworkMode: "none", Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: helperMount}}},
		nil, nil, name)
	if err != nil {
		return "", nil, engineError(fmt.Sprintf("creating a helper container for volume %s", vol), err)
	}
	remove := func() {
		// The caller's context may be done (a cancelled backup); the helper goes anyway.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := e.api.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true}); err != nil && !IsNotFound(err) {
			e.log.WithError(err).WithField("container", name).Warn("helper container not removed; the next cleanup removes it")
		}
	}
	return resp.ID, remove, nil
}

// BackupVolume writes the contents of volume vol to w as a tar (entries under "data/"), read
// through the archive API of a helper container made from image.
func (e *Engine) BackupVolume(ctx context.Context, vol, image string, w io.Writer) (int64, error) {
	if _, err := e.api.VolumeInspect(ctx, vol); err != nil {
		return 0, engineError("volume "+vol, err)
	}
	id, remove, err := e.helper(ctx, image, vol)
	if err != nil {
		return 0, err
	}
	defer remove()
	rc, _, err := e.api.CopyFromContainer(ctx, id, helperMount)
	if err != nil {
		return 0, engineError("reading volume "+vol, err)
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return n, fmt.Errorf("backing up volume %s: %w", vol, err)
	}
	e.log.WithFields(logrus.Fields{"volume": vol, "bytes": n}).Info("volume backed up")
	return n, nil
}

// VolumeInUseError says a volume cannot be replaced while containers use it.
type VolumeInUseError struct {
	Volume     string
	Containers []string
}

func (e *VolumeInUseError) Error() string {
	return fmt.Sprintf("volume %s is used by %s: remove those containers before restoring it", e.Volume, strings.Join(e.Containers, ", "))
}

// RestoreVolume replaces the contents of volume vol with a backup made by BackupVolume: the
// volume is removed and created again (same driver, options and labels) so that no file written
// after the backup survives, then the backup is extracted into it through a helper container
// made from image. No container may be using the volume (a VolumeInUseError names them): a
// restore is part of a rollback, after the service containers are gone.
func (e *Engine) RestoreVolume(ctx context.Context, vol, image string, r io.Reader) error {
	old, err := e.api.VolumeInspect(ctx, vol)
	if err != nil && !IsNotFound(err) {
		return engineError("volume "+vol, err)
	}
	if err == nil {
		users, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", vol))})
		if err != nil {
			return engineError("listing the containers of volume "+vol, err)
		}
		if len(users) > 0 {
			ue := &VolumeInUseError{Volume: vol}
			for _, u := range users {
				ue.Containers = append(ue.Containers, strings.TrimPrefix(strings.Join(u.Names, ","), "/"))
			}
			return ue
		}
		if err := e.api.VolumeRemove(ctx, vol, false); err != nil {
			return engineError("removing volume "+vol+" to restore it", err)
		}
	}
	if _, err := e.api.VolumeCreate(ctx, volume.CreateOptions{Name: vol, Driver: old.Driver, DriverOpts: old.Options, Labels: old.Labels}); err != nil {
		return engineError("creating volume "+vol, err)
	}
	id, remove, err := e.helper(ctx, image, vol)
	if err != nil {
		return err
	}
	defer remove()
	if err := e.api.CopyToContainer(ctx, id, "/", r, container.CopyToContainerOptions{}); err != nil {
		return engineError("restoring volume "+vol, err)
	}
	e.log.WithField("volume", vol).Info("volume restored")
	return nil
}

// CreateVolume creates a named volume labelled as the install's (an existing one is kept).
func (e *Engine) CreateVolume(ctx context.Context, vol string) error {
	if _, err := e.api.VolumeInspect(ctx, vol); err == nil {
		return nil
	}
	labels := map[string]string{LabelOwner: OwnerValue, LabelInstall: e.install}
	_, err := e.api.VolumeCreate(ctx, volume.CreateOptions{Name: vol, Labels: labels})
	return engineError("creating volume "+vol, err)
}
