// Package dockertest connects the supervisor's tests to the local Docker Engine and cleans up
// after them: every container and volume a test makes carries its own install label, and every
// image it pulls comes from its own in-process registry, so cleanup removes exactly what the test
// made and nothing of anybody else's.
package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"

	"github.com/ringbridge/ringbridge/supervisor/docker"
)

// Client returns a client for the local Engine. Without an Engine the test is skipped, except in
// CI (CI=true), where it fails: the supervisor's tests must run there.
func Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := docker.Connect(context.Background())
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the Docker Engine is unreachable: %v", err)
		}
		t.Skipf("no Docker Engine: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Install returns a new install name for the test ("rbtest-<random>") and, when the test ends,
// removes every container and volume labelled with it and every local image pulled from one of
// registryHosts.
func Install(t testing.TB, c *client.Client, registryHosts ...string) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	install := "rbtest-" + hex.EncodeToString(b)
	t.Cleanup(func() { Cleanup(t, c, install, registryHosts...) })
	return install
}

// Cleanup removes what install and registryHosts left on the Engine, reporting what it could not.
func Cleanup(t testing.TB, c *client.Client, install string, registryHosts ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	byInstall := filters.NewArgs(filters.Arg("label", docker.LabelInstall+"="+install))
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: byInstall})
	if err != nil {
		t.Errorf("cleanup: listing containers: %v", err)
	}
	for _, ct := range cs {
		if err := c.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Errorf("cleanup: removing container %s: %v", ct.Names, err)
		}
	}
	vs, err := c.VolumeList(ctx, volume.ListOptions{Filters: byInstall})
	if err != nil {
		t.Errorf("cleanup: listing volumes: %v", err)
	}
	for _, v := range vs.Volumes {
		if err := c.VolumeRemove(ctx, v.Name, true); err != nil {
			t.Errorf("cleanup: removing volume %s: %v", v.Name, err)
		}
	}
	// Volumes created by name only (a restore recreates with the old labels, a test may create
	// one unlabelled) are found by the install prefix every test volume name carries.
	all, err := c.VolumeList(ctx, volume.ListOptions{})
	if err == nil {
		for _, v := range all.Volumes {
			if strings.HasPrefix(v.Name, install+"-") {
				_ = c.VolumeRemove(ctx, v.Name, true)
			}
		}
	}
	if len(registryHosts) == 0 {
		return
	}
	imgs, err := c.ImageList(ctx, image.ListOptions{All: true})
	if err != nil {
		t.Errorf("cleanup: listing images: %v", err)
		return
	}
	for _, im := range imgs {
		if !fromHosts(im, registryHosts) {
			continue
		}
		if _, err := c.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !docker.IsNotFound(err) {
			t.Errorf("cleanup: removing image %s: %v", im.ID, err)
		}
	}
}

func fromHosts(im image.Summary, hosts []string) bool {
	for _, h := range hosts {
		for _, r := range append(append([]string{}, im.RepoDigests...), im.RepoTags...) {
			if strings.HasPrefix(r, h+"/") {
				return true
			}
		}
	}
	return false
}
