// Package release holds what the supervisor installs: the signed channel index of releases, where
// it comes from (an HTTPS URL, a local file, an offline bundle), and the plan from the installed
// version to a target through every release that cannot be skipped.
package release

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// IndexSchema is the index format this build reads; a newer one is refused with a message saying
// the supervisor itself must be updated first.
const IndexSchema = 1

// Channel is how close to development an install follows: dev sees every release, beta the beta and
// stable ones, stable only stable ones.
type Channel string

// The channels, from the most to the least stable.
const (
	Stable Channel = "stable"
	Beta   Channel = "beta"
	Dev    Channel = "dev"
)

// Channels lists the channels, most stable first.
func Channels() []Channel { return []Channel{Stable, Beta, Dev} }

func (c Channel) rank() int { return slices.Index(Channels(), c) }

// Valid reports whether c is one of the channels.
func (c Channel) Valid() bool { return c.rank() >= 0 }

// Sees reports whether an install on channel c is offered a release published on channel r.
func (c Channel) Sees(r Channel) bool { return r.Valid() && c.Valid() && r.rank() <= c.rank() }

// Index is the signed list of every release, each tagged with the channel it is published on.
type Index struct {
	Schema int `json:"schema"`
	// Published is when the index was signed; an index older than the installed one is refused
	// (a replayed old index could hide a fixed release).
	Published time.Time `json:"published"`
	Releases  []Release `json:"releases"`
}

// Release is one version of the whole stack.
type Release struct {
	Version Version `json:"version"`
	Channel Channel `json:"channel"`
	// Images maps each service (ami-gateway, connector-bx, connector-amo, admin, supervisor) to its
	// image by digest: registry/repository@sha256:<hex>. Never a tag: a tag can be moved.
	Images map[string]string `json:"images"`
	// UpdatesFrom is the lowest installed version this release updates from directly; an older
	// install goes through an intermediate release first. Empty: any older version.
	UpdatesFrom *Version `json:"updates_from,omitempty"`
	// ConfigMigration says this release changes the config schema (or other stored data) and must
	// be installed on the way to any later release: it is never skipped.
	ConfigMigration bool `json:"config_migration,omitempty"`
	// ConfigSchema is the config schema version this release's services write and read.
	ConfigSchema int    `json:"config_schema,omitempty"`
	Changelog    string `json:"changelog,omitempty"`
}

// Image returns the reference of service's image in r.
func (r *Release) Image(service string) (name.Digest, error) {
	s, ok := r.Images[service]
	if !ok {
		return name.Digest{}, fmt.Errorf("release %s has no image for %s", r.Version, service)
	}
	return name.NewDigest(s)
}

// Services lists the services r has images for, sorted.
func (r *Release) Services() []string {
	out := make([]string, 0, len(r.Images))
	for s := range r.Images {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Parse reads an index and checks it is well formed (a valid version per release, each once, a
// channel, image references by digest, updates_from below the version). It does not check the
// signature: Decode does, before calling it.
func Parse(raw []byte) (*Index, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var ix Index
	if err := dec.Decode(&ix); err != nil {
		return nil, fmt.Errorf("release index: %w", err)
	}
	if ix.Schema > IndexSchema {
		return nil, fmt.Errorf("release index: schema %d is newer than this supervisor reads (%d): update the supervisor first", ix.Schema, IndexSchema)
	}
	if ix.Schema < 1 {
		return nil, fmt.Errorf("release index: schema %d: want %d", ix.Schema, IndexSchema)
	}
	var problems []string
	seen := map[Version]bool{}
	for i := range ix.Releases {
		r := &ix.Releases[i]
		where := fmt.Sprintf("release %s", r.Version)
		if r.Version.IsZero() {
			problems = append(problems, fmt.Sprintf("releases[%d]: no version", i))
			continue
		}
		if seen[r.Version] {
			problems = append(problems, where+": listed twice")
		}
		seen[r.Version] = true
		if !r.Channel.Valid() {
			problems = append(problems, fmt.Sprintf("%s: channel %q is not one of %v", where, r.Channel, Channels()))
		}
		if len(r.Images) == 0 {
			problems = append(problems, where+": no images")
		}
		for svc, ref := range r.Images {
			if _, err := name.NewDigest(ref, name.StrictValidation); err != nil {
				problems = append(problems, fmt.Sprintf("%s: image of %s %q is not a reference by digest (repo@sha256:...): %v", where, svc, ref, err))
			}
		}
		if r.UpdatesFrom != nil && !r.UpdatesFrom.Less(r.Version) {
			problems = append(problems, fmt.Sprintf("%s: updates_from %s is not older than the release", where, r.UpdatesFrom))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("release index: %s", strings.Join(problems, "; "))
	}
	sort.Slice(ix.Releases, func(i, j int) bool { return ix.Releases[i].Version.Less(ix.Releases[j].Version) })
	return &ix, nil
}

// Find returns the release v, or nil.
func (ix *Index) Find(v Version) *Release {
	for i := range ix.Releases {
		if ix.Releases[i].Version == v {
			return &ix.Releases[i]
		}
	}
	return nil
}

// Latest returns the newest release an install on channel c is offered, or nil.
func (ix *Index) Latest(c Channel) *Release {
	for i := len(ix.Releases) - 1; i >= 0; i-- {
		if c.Sees(ix.Releases[i].Channel) {
			return &ix.Releases[i]
		}
	}
	return nil
}

// Versions lists the versions channel c is offered, oldest first.
func (ix *Index) Versions(c Channel) []string {
	var out []string
	for _, r := range ix.Releases {
		if c.Sees(r.Channel) {
			out = append(out, r.Version.String())
		}
	}
	return out
}
