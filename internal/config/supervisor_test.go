package config

import (
	"strings"
	"testing"
	"time"
)

func TestSupervisorSection(t *testing.T) {
	if err := DefaultSupervisor().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	cases := []struct {
		name   string
		change func(*Supervisor)
		want   string // "" for valid
	}{
		{"https index", func(s *Supervisor) { s.Index = "https://releases.example/stable/index.json" }, ""},
		{"loopback http index", func(s *Supervisor) { s.Index = "http://127.0.0.1:8080/index.json" }, ""},
		{"bundle file index", func(s *Supervisor) { s.Index = "/var/lib/ringbridge-supervisor/bundle.tar" }, ""},
		{"plain http index", func(s *Supervisor) { s.Index = "http://releases.example/index.json" }, "supervisor.index: http://releases.example/index.json: use https://"},
		{"relative index", func(s *Supervisor) { s.Index = "index.json" }, "supervisor.index"},
		{"channel typo", func(s *Supervisor) { s.Channel = "stabel" }, `supervisor.channel: "stabel" is not a channel (did you mean stable?)`},
		{"relative key", func(s *Supervisor) { s.PublicKey = "cosign.pub" }, "supervisor.public_key"},
		{"relative data dir", func(s *Supervisor) { s.DataDir = "data" }, "supervisor.data_dir"},
		{"install with a slash", func(s *Supervisor) { s.Install = "a/b" }, "supervisor.install"},
		{"no network", func(s *Supervisor) { s.Network = "" }, "supervisor.network"},
		{"zero health timeout", func(s *Supervisor) { s.HealthTimeout = 0 }, "supervisor.health_timeout"},
		{"negative watch", func(s *Supervisor) { s.Watch = -time.Second }, "supervisor.watch"},
		{"no backups", func(s *Supervisor) { s.BackupKeep = 0 }, "supervisor.backup_keep"},
		{"negative disk", func(s *Supervisor) { s.MinFreeDiskMB = -1 }, "supervisor.min_free_disk_mb"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := DefaultSupervisor()
			c.change(&s)
			err := s.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	t.Run("from a file with an override", func(t *testing.T) {
		cfg, err := Decode([]byte("pbx: pbx1\nsupervisor:\n  channel: beta\n"), func(k string) string {
			if k == "RINGBRIDGE_SUPERVISOR_HEALTH_TIMEOUT" {
				return "30s"
			}
			return ""
		})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Supervisor.Channel != "beta" || cfg.Supervisor.HealthTimeout != 30*time.Second || cfg.Supervisor.BackupKeep != DefaultSupervisorBackupKeep {
			t.Fatalf("supervisor = %+v", cfg.Supervisor)
		}
	})
}
