package update

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistrySizer asks the registry how many bytes pulling an image downloads: its config and
// layers as the manifest lists them.
func RegistrySizer(opts ...remote.Option) Sizer {
	return func(ctx context.Context, ref name.Digest) (int64, error) {
		img, err := remote.Image(ref, append([]remote.Option{remote.WithContext(ctx)}, opts...)...)
		if err != nil {
			return 0, fmt.Errorf("reading the manifest of %s: %w", ref, err)
		}
		m, err := img.Manifest()
		if err != nil {
			return 0, fmt.Errorf("reading the manifest of %s: %w", ref, err)
		}
		n := m.Config.Size
		for _, l := range m.Layers {
			n += l.Size
		}
		return n, nil
	}
}
