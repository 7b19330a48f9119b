package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// LoadImage loads img into the Engine ("docker load" of a tarball streamed from memory), tagged
// tag, and returns its local image ID: the digest of its config, as immutable as a repository
// digest, which a loaded image does not get. For offline bundles: nothing is pulled.
func (e *Engine) LoadImage(ctx context.Context, img v1.Image, tag name.Tag) (string, error) {
	cfgName, err := img.ConfigName()
	if err != nil {
		return "", fmt.Errorf("loading %s: %w", tag, err)
	}
	id := cfgName.String()
	if _, err := e.Image(ctx, id); err == nil {
		return id, nil
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(tag, img, pw)) }()
	resp, err := e.api.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		pr.CloseWithError(err)
		return "", engineError("loading image "+tag.String(), err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("loading image %s: reading the Engine's answer: %w", tag, err)
		}
		if m.Error != nil {
			return "", fmt.Errorf("loading image %s: %s", tag, m.Error.Message)
		}
	}
	if _, err := e.Image(ctx, id); err != nil {
		return "", fmt.Errorf("after loading %s: %w", tag, err)
	}
	return id, nil
}
