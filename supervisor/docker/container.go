package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sirupsen/logrus"
)

// Mount is a named volume or a host path in a container.
type Mount struct {
	Volume   string // a named volume (created by the Engine when absent)
	HostPath string // or a host path (bind mount)
	Target   string
	ReadOnly bool
}

// Spec is one service container the supervisor creates.
type Spec struct {
	// Name is the container's name; empty: "<install>-<service>".
	Name    string
	Service string
	Version string
	// Image is the reference by digest it runs (repo@sha256:...), never a tag, so what runs is
	// exactly what was verified. ImageID, when set, is used instead to create the container (an
	// image loaded from an offline bundle has no repository digest; its ID is the digest of its
	// config, equally immutable) while Image still names it in the labels.
	Image   name.Digest
	ImageID string
	Cmd     []string
	Env     []string
	Mounts  []Mount
	// Network is "host", "none", or a network's name.
	Network string
	// Labels are added to the ownership labels (which they cannot override).
	Labels map[string]string
	// Restart is the restart policy, "unless-stopped" by default: the Engine restarts a crashed
	// service and the watch period sees the restarts.
	Restart string
	// HealthInterval, when set, replaces the image's HEALTHCHECK interval (keeping its test): a
	// health gate learns faster than the image's production interval.
	HealthInterval time.Duration
	StopTimeout    time.Duration
}

var sha256ID = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ContainerName is the default name of service's container in install.
func ContainerName(install, service string) string { return install + "-" + service }

// Create creates (does not start) the container spec describes, labelled as the install's, and
// returns its ID.
func (e *Engine) Create(ctx context.Context, spec Spec) (string, error) {
	if spec.Service == "" || spec.Image.DigestStr() == "" {
		return "", errors.New("create: a service and an image by digest are required")
	}
	imageRef := spec.Image.String()
	if spec.ImageID != "" {
		if !sha256ID.MatchString(spec.ImageID) {
			return "", fmt.Errorf("create %s: image ID %q is not sha256:<64 hex>", spec.Service, spec.ImageID)
		}
		imageRef = spec.ImageID
	}
	if spec.Name == "" {
		spec.Name = ContainerName(e.install, spec.Service)
	}
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	for k, v := range e.ownerLabels(RoleService) {
		labels[k] = v
	}
	labels[LabelService] = spec.Service
	labels[LabelVersion] = spec.Version
	labels[LabelImage] = spec.Image.String()

	cfg := &container.Config{Image: imageRef, Cmd: spec.Cmd, Env: spec.Env, Labels: labels}
	if spec.StopTimeout > 0 {
		s := int(spec.StopTimeout.Seconds())
		cfg.StopTimeout = &s
	}
	if spec.HealthInterval > 0 {
		info, err := e.Image(ctx, imageRef)
		if err != nil {
			return "", err
		}
		if info.Healthcheck != nil {
			hc := *info.Healthcheck
			hc.Interval = spec.HealthInterval
			cfg.Healthcheck = &hc
		}
	}
	restart := spec.Restart
	if restart == "" {
		restart = "unless-stopped"
	}
	host := &container.HostConfig{
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(restart)},
		NetworkMode:   container.NetworkMode(spec.Network),
		LogConfig:     container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}},
	}
	for _, m := range spec.Mounts {
		hm := mount.Mount{Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Volume != "" {
			hm.Type, hm.Source = mount.TypeVolume, m.Volume
		} else {
			hm.Type, hm.Source = mount.TypeBind, m.HostPath
		}
		host.Mounts = append(host.Mounts, hm)
	}
	resp, err := e.api.ContainerCreate(ctx, cfg, host, nil, nil, spec.Name)
	if err != nil {
		return "", engineError(fmt.Sprintf("creating container %s from %s", spec.Name, imageRef), err)
	}
	e.log.WithFields(logrus.Fields{"container": spec.Name, "id": short(resp.ID), "image": spec.Image.String(),
		"version": spec.Version}).Info("container created")
	return resp.ID, nil
}

func (e *Engine) ownerLabels(role string) map[string]string {
	return map[string]string{LabelOwner: OwnerValue, LabelInstall: e.install, LabelRole: role}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Start starts a created or stopped container.
func (e *Engine) Start(ctx context.Context, id string) error {
	return engineError("starting container "+short(id), e.api.ContainerStart(ctx, id, container.StartOptions{}))
}

// Stop stops a container, giving it timeout to exit on SIGTERM before it is killed. A container
// that is gone counts as stopped.
func (e *Engine) Stop(ctx context.Context, id string, timeout time.Duration) error {
	s := int(timeout.Seconds())
	err := e.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &s})
	if IsNotFound(err) {
		return nil
	}
	return engineError("stopping container "+short(id), err)
}

// Remove removes a container (stopping it if it runs), leaving its volumes. A container that is
// gone already counts as removed.
func (e *Engine) Remove(ctx context.Context, id string) error {
	err := e.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if IsNotFound(err) {
		return nil
	}
	return engineError("removing container "+short(id), err)
}

// Rename renames a container (the old copy of a service steps aside for the new one).
func (e *Engine) Rename(ctx context.Context, id, newName string) error {
	return engineError("renaming container "+short(id)+" to "+newName, e.api.ContainerRename(ctx, id, newName))
}

// Container is an owned container as the supervisor sees it.
type Container struct {
	ID      string
	Name    string
	Service string
	Version string
	Image   string // the reference by digest it was created from
	Role    string
	State   string // created, running, exited, restarting...
	Health  string // starting, healthy, unhealthy, or "" without HEALTHCHECK
	// RestartCount and ExitCode come from Inspect only.
	RestartCount int
	ExitCode     int
	StartedAt    time.Time
}

// List returns the containers this install owns (every role, running or not).
func (e *Engine) List(ctx context.Context) ([]Container, error) {
	f := filters.NewArgs(filters.Arg("label", LabelOwner+"="+OwnerValue), filters.Arg("label", LabelInstall+"="+e.install))
	cs, err := e.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, engineError("listing containers", err)
	}
	out := make([]Container, 0, len(cs))
	for _, c := range cs {
		n := ""
		if len(c.Names) > 0 {
			n = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, Container{ID: c.ID, Name: n, Service: c.Labels[LabelService], Version: c.Labels[LabelVersion],
			Image: c.Labels[LabelImage], Role: c.Labels[LabelRole], State: string(c.State), Health: healthFromStatus(c.Status)})
	}
	return out, nil
}

// healthFromStatus reads the health the list's status text shows: "Up 3 seconds (healthy)".
func healthFromStatus(s string) string {
	for _, h := range []string{"health: starting", "unhealthy", "healthy"} {
		if strings.Contains(s, "("+h+")") {
			return strings.TrimPrefix(h, "health: ")
		}
	}
	return ""
}

// Inspect returns one container's state. It need not be owned (the supervisor looks at what
// compose runs too), but the labels say whether it is.
func (e *Engine) Inspect(ctx context.Context, id string) (Container, error) {
	ins, err := e.api.ContainerInspect(ctx, id)
	if err != nil {
		return Container{}, engineError("inspecting container "+short(id), err)
	}
	c := Container{ID: ins.ID, Name: strings.TrimPrefix(ins.Name, "/"), RestartCount: ins.RestartCount}
	if ins.Config != nil {
		l := ins.Config.Labels
		c.Service, c.Version, c.Image, c.Role = l[LabelService], l[LabelVersion], l[LabelImage], l[LabelRole]
	}
	if st := ins.State; st != nil {
		c.State, c.ExitCode = string(st.Status), st.ExitCode
		c.StartedAt, _ = time.Parse(time.RFC3339Nano, st.StartedAt)
		if st.Health != nil {
			c.Health = string(st.Health.Status)
		}
	}
	return c, nil
}

// UnhealthyError says a container did not become healthy: it exited, its HEALTHCHECK failed, or
// the deadline passed. Retrying the same image will not help; the update rolls back.
type UnhealthyError struct {
	Container string
	Reason    string
	// Output is the last health check's output, or the end of the container's log when it
	// exited; it helps whoever reads the update's report.
	Output string
}

func (e *UnhealthyError) Error() string {
	msg := fmt.Sprintf("container %s is not healthy: %s", e.Container, e.Reason)
	if out := strings.TrimSpace(e.Output); out != "" {
		msg += " (last output: " + out + ")"
	}
	return msg
}

// WaitHealthy waits until the container's HEALTHCHECK reports healthy, within timeout. It fails as
// soon as the check reports unhealthy or the container exits or restarts. A container whose image
// has no HEALTHCHECK counts as healthy once it has kept running for settle.
func (e *Engine) WaitHealthy(ctx context.Context, id string, timeout, settle time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(e.poll)
	defer t.Stop()
	cname := short(id)
	for {
		ins, err := e.api.ContainerInspect(ctx, id)
		if err != nil {
			if ctx.Err() == context.DeadlineExceeded {
				return &UnhealthyError{Container: cname, Reason: fmt.Sprintf("no healthy report within %s", timeout)}
			}
			return engineError("inspecting container "+cname, err)
		}
		cname = strings.TrimPrefix(ins.Name, "/")
		st := ins.State
		switch {
		case st == nil:
		case st.Status == container.StateExited || st.Status == container.StateDead:
			return &UnhealthyError{Container: cname, Reason: fmt.Sprintf("exited with code %d", st.ExitCode), Output: e.tail(ctx, id, 5)}
		case st.Restarting || ins.RestartCount > 0:
			return &UnhealthyError{Container: cname, Reason: fmt.Sprintf("restarting (exit code %d, %d restarts)", st.ExitCode, ins.RestartCount), Output: e.tail(ctx, id, 5)}
		case st.Health != nil && st.Health.Status == container.Healthy:
			return nil
		case st.Health != nil && st.Health.Status == container.Unhealthy:
			return &UnhealthyError{Container: cname, Reason: "its HEALTHCHECK reports unhealthy", Output: lastProbe(st.Health)}
		case st.Health == nil && st.Running:
			started, _ := time.Parse(time.RFC3339Nano, st.StartedAt)
			if !started.IsZero() && time.Since(started) >= settle {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			reason := fmt.Sprintf("no healthy report within %s", timeout)
			if ctx.Err() == context.Canceled {
				return fmt.Errorf("waiting for %s: %w", cname, ctx.Err())
			}
			out := ""
			if st != nil && st.Health != nil {
				reason += " (health: " + string(st.Health.Status) + ")"
				out = lastProbe(st.Health)
			}
			return &UnhealthyError{Container: cname, Reason: reason, Output: out}
		case <-t.C:
		}
	}
}

func lastProbe(h *container.Health) string {
	if h == nil || len(h.Log) == 0 {
		return ""
	}
	return h.Log[len(h.Log)-1].Output
}

// tail is the end of a container's log for an error message; failures give "".
func (e *Engine) tail(ctx context.Context, id string, lines int) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	b, err := e.Logs(ctx, id, lines)
	if err != nil {
		return ""
	}
	return string(b)
}

// Logs returns the last lines of a container's stdout and stderr, interleaved as written.
func (e *Engine) Logs(ctx context.Context, id string, lines int) ([]byte, error) {
	rc, err := e.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true,
		Tail: fmt.Sprint(lines), Timestamps: true})
	if err != nil {
		return nil, engineError("reading the logs of "+short(id), err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	// Containers run without a TTY, so the stream is multiplexed.
	if _, err := stdcopy.StdCopy(&buf, &buf, io.LimitReader(rc, 16<<20)); err != nil {
		return nil, fmt.Errorf("reading the logs of %s: %w", short(id), err)
	}
	return buf.Bytes(), nil
}

// InspectJSON is a container's full inspect data as the Engine returns it, for a bug report.
func (e *Engine) InspectJSON(ctx context.Context, id string) ([]byte, error) {
	ins, err := e.api.ContainerInspect(ctx, id)
	if err != nil {
		return nil, engineError("inspecting container "+short(id), err)
	}
	return json.MarshalIndent(ins, "", "  ")
}
