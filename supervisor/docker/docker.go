// Package docker is what the supervisor does with the Docker Engine: pull by digest with per-layer
// progress and stall detection (one shared pull per image), create containers by digest with
// ringbridge's ownership labels, start, stop, remove, wait for the image's HEALTHCHECK, list what
// an install owns, back up and restore volumes through the archive API, and read logs.
//
// The client is created with API version negotiation: a pinned API version is what broke
// watchtower when Docker 29 dropped old versions. Only the calls in API are used, so a test can
// hand in a fake.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/supervisor/retry"
)

// The labels that mark what the supervisor owns. compose never sets them, so "docker compose up"
// and the supervisor never fight over a container.
const (
	LabelOwner   = "io.ringbridge.owner"   // always OwnerValue
	LabelInstall = "io.ringbridge.install" // the install's name (supervisor.install)
	LabelService = "io.ringbridge.service" // ami-gateway, connector-bx, ...
	LabelVersion = "io.ringbridge.version" // the release version the container belongs to
	LabelImage   = "io.ringbridge.image"   // the reference by digest it was created from
	LabelRole    = "io.ringbridge.role"    // RoleService, RoleHelper
	OwnerValue   = "supervisor"
	RoleService  = "service"
	// RoleHelper marks the short-lived containers that back up and restore volumes; they are never
	// started.
	RoleHelper = "helper"
)

// API is the part of the Engine API the supervisor uses; *client.Client implements it.
type API interface {
	Ping(ctx context.Context) (types.Ping, error)
	ImagePull(ctx context.Context, ref string, options image.PullOptions) (io.ReadCloser, error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImageRemove(ctx context.Context, imageID string, options image.RemoveOptions) ([]image.DeleteResponse, error)
	ImageLoad(ctx context.Context, input io.Reader, opts ...client.ImageLoadOption) (image.LoadResponse, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig,
		networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, options container.StartOptions) error
	ContainerStop(ctx context.Context, id string, options container.StopOptions) error
	ContainerRemove(ctx context.Context, id string, options container.RemoveOptions) error
	ContainerRename(ctx context.Context, id, newName string) error
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerLogs(ctx context.Context, id string, options container.LogsOptions) (io.ReadCloser, error)
	CopyFromContainer(ctx context.Context, id, srcPath string) (io.ReadCloser, container.PathStat, error)
	CopyToContainer(ctx context.Context, id, dstPath string, content io.Reader, options container.CopyToContainerOptions) error
	VolumeCreate(ctx context.Context, options volume.CreateOptions) (volume.Volume, error)
	VolumeInspect(ctx context.Context, volumeID string) (volume.Volume, error)
	VolumeRemove(ctx context.Context, volumeID string, force bool) error
}

var _ API = (*client.Client)(nil)

// Connect returns a client for the Engine named by the environment (DOCKER_HOST, else the local
// socket), negotiating the API version, and checks that the Engine answers.
func Connect(ctx context.Context) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		c.Close()
		return nil, retry.Temporary(fmt.Errorf("the Docker Engine at %s does not answer: %w", c.DaemonHost(), err))
	}
	return c, nil
}

// Engine runs the supervisor's operations for one install.
type Engine struct {
	api     API
	install string
	log     logrus.FieldLogger
	pulls   *pulls
	// poll is how often container state is read while waiting for health.
	poll time.Duration
}

// Option changes New's engine.
type Option func(*Engine)

// WithPollInterval sets how often WaitHealthy reads a container's state (default 250ms).
func WithPollInterval(d time.Duration) Option { return func(e *Engine) { e.poll = d } }

// New returns the engine operations of install over api.
func New(api API, install string, log logrus.FieldLogger, opts ...Option) *Engine {
	e := &Engine{api: api, install: install, log: log, poll: 250 * time.Millisecond}
	e.pulls = newPulls(api, log)
	for _, o := range opts {
		o(e)
	}
	return e
}

// Install is the install name whose containers this engine owns.
func (e *Engine) Install() string { return e.install }

// engineError wraps an Engine API failure: not-found and conflicts are permanent (the request must
// change); anything else (the Engine restarting, a timeout, a dropped socket) may pass.
func engineError(what string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("%s: %w", what, err)
	switch {
	case errors.Is(err, context.Canceled):
		return wrapped
	case cerrdefs.IsNotFound(err), cerrdefs.IsConflict(err), cerrdefs.IsInvalidArgument(err),
		cerrdefs.IsPermissionDenied(err), cerrdefs.IsNotImplemented(err), cerrdefs.IsAlreadyExists(err):
		return wrapped
	}
	return retry.Temporary(wrapped)
}

// IsNotFound reports whether err says the Engine has no such container, image or volume.
func IsNotFound(err error) bool { return cerrdefs.IsNotFound(err) }
