// Package bugreport builds the archive support asks for: every owned container's inspect data and
// recent logs, the installed versions, the update journal and backups list, and the config with
// every secret replaced by <secret>. Secrets are removed twice: the config is rendered with its
// typed secrets redacted, and every file of the archive passes through a redactor holding the
// secret values, which catches a secret a service logged or an environment variable carried.
package bugreport

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ringbridge/ringbridge/supervisor/docker"
)

// Engine is what a report reads from the Docker Engine; *docker.Engine has it.
type Engine interface {
	List(ctx context.Context) ([]docker.Container, error)
	InspectJSON(ctx context.Context, id string) ([]byte, error)
	Logs(ctx context.Context, id string, lines int) ([]byte, error)
}

// Redactor replaces secret values in text; *logging.Redactor is one.
type Redactor interface {
	Redact(string) string
}

// Input is what goes into a report besides the containers.
type Input struct {
	// Versions is free-form version information (the supervisor's build, the installed release).
	Versions map[string]string
	// Config is the config rendered with its secrets redacted (config.Config.Dump).
	Config []byte
	// DataDir is the supervisor's data dir: state.json, journal.json and the backups list are
	// read from it.
	DataDir string
	// LogLines is how many lines of each container's log to take (default 2000).
	LogLines int
}

// Write writes the report as a gzipped tar to w. A part that cannot be read is noted in
// errors.txt instead of failing the report: a report is most needed when things are broken.
func Write(ctx context.Context, w io.Writer, e Engine, r Redactor, in Input) error {
	if in.LogLines == 0 {
		in.LogLines = 2000
	}
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	now := time.Now()
	var problems []string
	put := func(name string, body []byte) error {
		body = []byte(r.Redact(string(body)))
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	versions, _ := json.MarshalIndent(in.Versions, "", "  ")
	if err := put("versions.json", versions); err != nil {
		return err
	}
	if in.Config != nil {
		if err := put("config.yaml", in.Config); err != nil {
			return err
		}
	}
	for _, f := range []string{"state.json", "journal.json", "images.json"} {
		body, err := os.ReadFile(filepath.Join(in.DataDir, f))
		if err != nil {
			if !os.IsNotExist(err) {
				problems = append(problems, fmt.Sprintf("%s: %v", f, err))
			}
			continue
		}
		if err := put(f, body); err != nil {
			return err
		}
	}
	if entries, err := os.ReadDir(filepath.Join(in.DataDir, "backups")); err == nil {
		var list []json.RawMessage
		for _, d := range entries {
			if body, err := os.ReadFile(filepath.Join(in.DataDir, "backups", d.Name(), "manifest.json")); err == nil {
				list = append(list, body)
			}
		}
		body, _ := json.MarshalIndent(list, "", "  ")
		if err := put("backups.json", body); err != nil {
			return err
		}
	}
	cs, err := e.List(ctx)
	if err != nil {
		problems = append(problems, fmt.Sprintf("listing containers: %v", err))
	}
	summary, _ := json.MarshalIndent(cs, "", "  ")
	if err := put("containers.json", summary); err != nil {
		return err
	}
	for _, c := range cs {
		if ins, err := e.InspectJSON(ctx, c.ID); err != nil {
			problems = append(problems, fmt.Sprintf("inspect %s: %v", c.Name, err))
		} else if err := put("containers/"+c.Name+"/inspect.json", ins); err != nil {
			return err
		}
		if logs, err := e.Logs(ctx, c.ID, in.LogLines); err != nil {
			problems = append(problems, fmt.Sprintf("logs %s: %v", c.Name, err))
		} else if err := put("containers/"+c.Name+"/logs.txt", logs); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		body, _ := json.MarshalIndent(problems, "", "  ")
		if err := put("errors.json", body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}
