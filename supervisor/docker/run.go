package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/docker/docker/api/types/container"
)

// InputFile is a file put into a one-off container before it starts.
type InputFile struct {
	Body     []byte
	Mode     int64
	UID, GID int // owner: the image's user, so it can rewrite the file in place
}

// Job is a one-off command in a container of a service image: a config migration, which must be
// the new version's own code, run before any of its services starts.
type Job struct {
	Image   string // repo@sha256:... or an image ID, present locally
	Cmd     []string
	Inputs  map[string]InputFile // absolute path -> file
	Outputs []string             // absolute paths read back after it exits
	Timeout time.Duration
}

// JobResult is how a Job ended.
type JobResult struct {
	ExitCode int
	Logs     []byte
	Outputs  map[string][]byte
}

// RunJob creates a container for job (no network, never restarted, labelled as a helper), copies
// its inputs in, runs it to the end, reads its outputs and logs back and removes it.
func (e *Engine) RunJob(ctx context.Context, job Job) (JobResult, error) {
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := fmt.Sprintf("%s-job-%s", e.install, hex.EncodeToString(suffix))
	resp, err := e.api.ContainerCreate(ctx, &container.Config{Image: job.Image, Cmd: job.Cmd, Labels: e.ownerLabels(RoleHelper)},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, name)
	if err != nil {
		return JobResult{}, engineError("creating job container from "+job.Image, err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := e.api.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true}); err != nil && !IsNotFound(err) {
			e.log.WithError(err).WithField("container", name).Warn("job container not removed")
		}
	}()
	if len(job.Inputs) > 0 {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for p, f := range job.Inputs {
			h := &tar.Header{Name: p[1:], Mode: f.Mode, Size: int64(len(f.Body)), Uid: f.UID, Gid: f.GID,
				Typeflag: tar.TypeReg, ModTime: time.Now()}
			if err := tw.WriteHeader(h); err != nil {
				return JobResult{}, err
			}
			if _, err := tw.Write(f.Body); err != nil {
				return JobResult{}, err
			}
		}
		if err := tw.Close(); err != nil {
			return JobResult{}, err
		}
		if err := e.api.CopyToContainer(ctx, resp.ID, "/", &buf, container.CopyToContainerOptions{}); err != nil {
			return JobResult{}, engineError("copying the job's inputs", err)
		}
	}
	if err := e.api.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return JobResult{}, engineError("starting job "+name, err)
	}
	timeout := job.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var res JobResult
	for {
		ins, err := e.api.ContainerInspect(wctx, resp.ID)
		if err != nil {
			if wctx.Err() == context.DeadlineExceeded {
				logs, _ := e.Logs(ctx, resp.ID, 20)
				return JobResult{Logs: logs}, fmt.Errorf("job %v did not end within %s", job.Cmd, timeout)
			}
			return JobResult{}, engineError("inspecting job "+name, err)
		}
		if ins.State != nil && !ins.State.Running && ins.State.Status != container.StateCreated {
			res.ExitCode = ins.State.ExitCode
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(e.poll):
		}
	}
	res.Logs, _ = e.Logs(ctx, resp.ID, 200)
	res.Outputs = map[string][]byte{}
	for _, p := range job.Outputs {
		rc, _, err := e.api.CopyFromContainer(ctx, resp.ID, p)
		if err != nil {
			return res, engineError("reading "+p+" from job "+name, err)
		}
		body, err := firstFile(rc, path.Base(p))
		rc.Close()
		if err != nil {
			return res, fmt.Errorf("reading %s from job %s: %w", p, name, err)
		}
		res.Outputs[p] = body
	}
	return res, nil
}

// firstFile returns the body of the tar entry named base (CopyFromContainer names a single file by
// its base name).
func firstFile(r io.Reader, base string) ([]byte, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s is not in the archive", base)
		}
		if err != nil {
			return nil, err
		}
		if h.Name == base && h.Typeflag == tar.TypeReg {
			return io.ReadAll(io.LimitReader(tr, 16<<20))
		}
	}
}
