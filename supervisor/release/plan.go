package release

import (
	"errors"
	"fmt"
	"strings"
)

// Plan refusals. Each is wrapped with the versions involved and what to do; none is helped by a
// retry.
var (
	ErrUnknownVersion = errors.New("unknown version")
	ErrNotOnChannel   = errors.New("release not on this install's channel")
	ErrDowngrade      = errors.New("downgrade refused")
	ErrNoPath         = errors.New("no update path")
)

// Step is one release of a chain and why the chain stops there.
type Step struct {
	Release *Release
	Why     string
}

// Chain is the update from an installed version to a target: the releases to install in order,
// the last being the target. No steps means the target is installed already.
type Chain struct {
	From  Version
	Steps []Step
}

// Target is the last release of the chain, or nil when there is nothing to do.
func (c Chain) Target() *Release {
	if len(c.Steps) == 0 {
		return nil
	}
	return c.Steps[len(c.Steps)-1].Release
}

// String prints the chain for an operator: "1.0.0 -> 1.1.0 -> 1.2.0" and one line per step.
func (c Chain) String() string {
	if len(c.Steps) == 0 {
		return fmt.Sprintf("%s is installed: nothing to do\n", c.From)
	}
	var b strings.Builder
	from := c.From.String()
	if c.From.IsZero() {
		from = "(nothing installed)"
	}
	b.WriteString(from)
	for _, s := range c.Steps {
		b.WriteString(" -> " + s.Release.Version.String())
	}
	b.WriteString("\n")
	for i, s := range c.Steps {
		r := s.Release
		fmt.Fprintf(&b, "%d. %s (%s", i+1, r.Version, r.Channel)
		if r.ConfigMigration {
			b.WriteString(", config migration")
		}
		fmt.Fprintf(&b, "): %s\n", s.Why)
		if first, _, _ := strings.Cut(strings.TrimSpace(r.Changelog), "\n"); first != "" {
			fmt.Fprintf(&b, "   %s\n", first)
		}
	}
	return b.String()
}

// Plan returns the chain from installed (zero for a fresh install) to target on channel: every
// release between them that carries a config migration is a stop (it is never skipped, so each
// migration runs with the version that wrote it and each has its own rollback point), and where a
// release does not update directly from the previous stop (updates_from), the newest release that
// does is put in between. Going down is refused: that is a rollback to a backup, not an update.
func (ix *Index) Plan(channel Channel, installed, target Version) (Chain, error) {
	chain := Chain{From: installed}
	t := ix.Find(target)
	if t == nil {
		return chain, fmt.Errorf("%w: %s is not in the release index; channel %s offers %s",
			ErrUnknownVersion, target, channel, listOrNone(ix.Versions(channel)))
	}
	if !channel.Sees(t.Channel) {
		return chain, fmt.Errorf("%w: %s is published on channel %s and this install follows %s: switch supervisor.channel to %s to install it",
			ErrNotOnChannel, target, t.Channel, channel, t.Channel)
	}
	switch c := target.Compare(installed); {
	case c == 0:
		return chain, nil
	case c < 0:
		return chain, fmt.Errorf("%w: %s is older than the installed %s; an update only goes forward (to go back, restore the backup taken before the update)",
			ErrDowngrade, target, installed)
	}
	if installed.IsZero() {
		chain.Steps = []Step{{Release: t, Why: "fresh install"}}
		return chain, nil
	}

	// The releases that cannot be skipped, in order, then the target.
	var stops []Step
	for i := range ix.Releases {
		r := &ix.Releases[i]
		if !installed.Less(r.Version) || !r.Version.Less(target) || !r.ConfigMigration {
			continue
		}
		if !channel.Sees(r.Channel) {
			return chain, fmt.Errorf("%w: %s needs the config migration of %s first, and %s is not on channel %s yet: wait for it, or follow channel %s",
				ErrNoPath, target, r.Version, r.Version, channel, r.Channel)
		}
		stops = append(stops, Step{Release: r, Why: "carries a config migration: cannot be skipped"})
	}
	stops = append(stops, Step{Release: t, Why: "target"})

	cur := installed
	for _, stop := range stops {
		for cur.Less(stop.Release.Version) {
			if updatesFrom(stop.Release, cur) {
				chain.Steps = append(chain.Steps, stop)
				cur = stop.Release.Version
				break
			}
			// The newest release before the stop that the current version updates to directly.
			// Taking the newest is enough: whatever a lower one reaches, it reaches as well.
			var hop *Release
			for i := len(ix.Releases) - 1; i >= 0; i-- {
				r := &ix.Releases[i]
				if cur.Less(r.Version) && r.Version.Less(stop.Release.Version) && channel.Sees(r.Channel) && updatesFrom(r, cur) {
					hop = r
					break
				}
			}
			if hop == nil {
				return chain, fmt.Errorf("%w: %s updates only from %s or later, and no release on channel %s between %s and %s updates from %s",
					ErrNoPath, stop.Release.Version, stop.Release.UpdatesFrom, channel, cur, stop.Release.Version, cur)
			}
			chain.Steps = append(chain.Steps, Step{Release: hop,
				Why: fmt.Sprintf("%s updates only from %s or later", stop.Release.Version, stop.Release.UpdatesFrom)})
			cur = hop.Version
		}
	}
	return chain, nil
}

func updatesFrom(r *Release, installed Version) bool {
	return r.UpdatesFrom == nil || !installed.Less(*r.UpdatesFrom)
}

func listOrNone(vs []string) string {
	if len(vs) == 0 {
		return "no release"
	}
	return strings.Join(vs, ", ")
}
