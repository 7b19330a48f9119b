package config

import (
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Supervisor is the supervisor's section: where releases come from, the key they must be signed
// with, and how an update runs. Only the supervisor reads it.
type Supervisor struct {
	// Channel is which releases this install is offered: stable, beta or dev.
	Channel string `yaml:"channel"`
	// Index is where the signed release index is read: an https:// URL (its signature at the same
	// URL + ".sig"), or a file on the supervisor's volume (FILE with FILE.sig, or an offline
	// bundle). Empty: no online source; updates come from "supervisor import BUNDLE" only.
	Index string `yaml:"index"`
	// PublicKey is the file holding the release public key (cosign.pub, PEM). Nothing is installed
	// that does not verify against it. The supervisor image carries the project's key there.
	PublicKey string `yaml:"public_key"`
	// DataDir is the supervisor's volume: installed state, the update journal, backups.
	DataDir string `yaml:"data_dir"`
	// Install names this install's containers, volumes and labels (io.ringbridge.install), so two
	// installs, or a test, on one Docker Engine never touch each other's.
	Install string `yaml:"install"`
	// Network is the Docker network the service containers join (compose's network, where
	// RabbitMQ and Redis are reachable).
	Network string `yaml:"network"`
	// HealthTimeout is how long a new container has to report healthy (its image's HEALTHCHECK)
	// before the update is rolled back.
	HealthTimeout time.Duration `yaml:"health_timeout"`
	// Watch is the period after an update in which a crash-looping service rolls it back.
	Watch time.Duration `yaml:"watch"`
	// PullStallTimeout cancels an image pull that moved no byte for this long.
	PullStallTimeout time.Duration `yaml:"pull_stall_timeout"`
	// MinFreeDiskMB is the free space the Docker data disk must keep after the new images are
	// pulled; an update that would leave less does not start.
	MinFreeDiskMB int `yaml:"min_free_disk_mb"`
	// BackupKeep is how many backups are kept; older ones are deleted.
	BackupKeep int `yaml:"backup_keep"`
}

// Supervisor defaults.
const (
	DefaultSupervisorChannel    = "stable"
	DefaultSupervisorPublicKey  = "/usr/local/share/ringbridge/release.pub"
	DefaultSupervisorDataDir    = "/var/lib/ringbridge-supervisor"
	DefaultSupervisorInstall    = "ringbridge"
	DefaultSupervisorNetwork    = "ringbridge"
	DefaultSupervisorHealth     = 90 * time.Second
	DefaultSupervisorWatch      = 5 * time.Minute
	DefaultSupervisorPullStall  = 2 * time.Minute
	DefaultSupervisorMinFreeMB  = 1024
	DefaultSupervisorBackupKeep = 10
)

// DefaultSupervisor returns the supervisor section's defaults.
func DefaultSupervisor() Supervisor {
	return Supervisor{
		Channel:          DefaultSupervisorChannel,
		PublicKey:        DefaultSupervisorPublicKey,
		DataDir:          DefaultSupervisorDataDir,
		Install:          DefaultSupervisorInstall,
		Network:          DefaultSupervisorNetwork,
		HealthTimeout:    DefaultSupervisorHealth,
		Watch:            DefaultSupervisorWatch,
		PullStallTimeout: DefaultSupervisorPullStall,
		MinFreeDiskMB:    DefaultSupervisorMinFreeMB,
		BackupKeep:       DefaultSupervisorBackupKeep,
	}
}

// SupervisorChannels are the channels supervisor.channel accepts, most stable first.
func SupervisorChannels() []string { return []string{"stable", "beta", "dev"} }

// installName is what an install name may hold: it prefixes container and volume names.
var installName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,39}$`)

// Validate checks the supervisor section alone (the supervisor reads no other section to plan).
func (s Supervisor) Validate() error { return s.problems("supervisor").err() }

func (s Supervisor) problems(p string) Problems {
	var ps Problems
	if !slices.Contains(SupervisorChannels(), s.Channel) {
		hint := ""
		if g := suggest(s.Channel, SupervisorChannels()); g != "" {
			hint = " (did you mean " + g + "?)"
		}
		ps.add(p+".channel", "%q is not a channel%s: write stable, beta or dev", s.Channel, hint)
	}
	if s.Index != "" {
		if strings.Contains(s.Index, "://") {
			u, err := url.Parse(s.Index)
			switch {
			case err != nil || u.Host == "":
				ps.add(p+".index", "%q is not a URL: write https://host/path/index.json or a file path", s.Index)
			case u.Scheme == "https":
			case u.Scheme == "http" && isLoopbackHost(u.Hostname()):
			default:
				ps.add(p+".index", "%s: use https:// (plain http only to a loopback address)", u.Redacted())
			}
		} else if !path.IsAbs(s.Index) {
			ps.add(p+".index", "%q is neither an https:// URL nor an absolute file path", s.Index)
		}
	}
	if !path.IsAbs(s.PublicKey) {
		ps.add(p+".public_key", "%q is not an absolute path: write the file holding the release key, e.g. %s", s.PublicKey, DefaultSupervisorPublicKey)
	}
	if !path.IsAbs(s.DataDir) {
		ps.add(p+".data_dir", "%q is not an absolute path: write e.g. %s", s.DataDir, DefaultSupervisorDataDir)
	}
	if !installName.MatchString(s.Install) {
		ps.add(p+".install", "%q cannot name containers: use up to 40 lower-case letters, digits, '.', '_' and '-', starting with a letter or digit", s.Install)
	}
	if s.Network == "" {
		ps.add(p+".network", "not set: write the Docker network of the install (compose's), e.g. %s", DefaultSupervisorNetwork)
	}
	checkPositive(&ps, p+".health_timeout", s.HealthTimeout.String(), s.HealthTimeout > 0, "90s")
	checkPositive(&ps, p+".watch", s.Watch.String(), s.Watch > 0, "5m")
	checkPositive(&ps, p+".pull_stall_timeout", s.PullStallTimeout.String(), s.PullStallTimeout > 0, "2m")
	if s.MinFreeDiskMB < 0 {
		ps.add(p+".min_free_disk_mb", "%d is negative: write the megabytes to keep free, e.g. %d", s.MinFreeDiskMB, DefaultSupervisorMinFreeMB)
	}
	if s.BackupKeep < 1 {
		ps.add(p+".backup_keep", "%d keeps no backup: write at least 1 (e.g. %d); an update always takes one", s.BackupKeep, DefaultSupervisorBackupKeep)
	}
	return ps
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
