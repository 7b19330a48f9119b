package update

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ringbridge/ringbridge/supervisor/docker"
	"github.com/ringbridge/ringbridge/supervisor/release"
	"github.com/ringbridge/ringbridge/supervisor/sign"
)

func TestUpdate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u := f.updater(t)
	ctx := context.Background()
	v100 := f.rel(t, "1.0.0", relOpts{})
	v110 := f.rel(t, "1.1.0", relOpts{})

	if !t.Run("fresh install", func(t *testing.T) {
		rep, err := u.Update(ctx, v100)
		if err != nil {
			t.Fatal(err)
		}
		f.expectRelease(t, v100)
		t.Logf("installed 1.0.0 in %s (stages %v)", rep.Took.Round(time.Millisecond), rounded(rep.Stages))
	}) {
		return
	}

	if !t.Run("good update swaps and commits", func(t *testing.T) {
		stop := make(chan struct{})
		gwDown := f.watchAvailability("ami-gateway", stop)
		rep, err := u.Update(ctx, v110)
		close(stop)
		if err != nil {
			t.Fatal(err)
		}
		f.expectRelease(t, v110)
		if d := <-gwDown; d > 0 {
			t.Errorf("ami-gateway (start-first) had no healthy copy for %s during its swap", d)
		}
		for _, s := range rep.Services {
			t.Logf("%s: start-first %v, unavailable %s, healthy after %s", s.Service, s.StartFirst,
				s.Unavailable.Round(time.Millisecond), s.Healthy.Round(time.Millisecond))
			if s.StartFirst && s.Unavailable != 0 {
				t.Errorf("%s start-first but unavailable %s", s.Service, s.Unavailable)
			}
			if !s.StartFirst && s.Unavailable > 2*time.Second {
				t.Errorf("%s unavailable %s, target under 2s", s.Service, s.Unavailable)
			}
		}
		t.Logf("full update 1.0.0 -> 1.1.0 with images present: %s (stages %v)", rep.Took.Round(time.Millisecond), rounded(rep.Stages))
		if f.config(t) != initialConfig {
			t.Fatalf("config changed by an update without migration: %q", f.config(t))
		}
		bs, _ := u.Backups()
		if len(bs) != 2 || !bs[0].Config || len(bs[0].Volumes) != 1 || bs[0].Version != "1.0.0" {
			t.Fatalf("backups %+v", bs)
		}
	}) {
		return
	}

	for _, c := range []struct {
		name string
		bad  string // the service that never becomes healthy
	}{
		{"unhealthy stop-first service rolls back", "admin"},
		{"unhealthy start-first service rolls back", "ami-gateway"},
	} {
		if !t.Run(c.name, func(t *testing.T) {
			bad := f.rel(t, "1.2.0-"+c.bad, relOpts{modes: map[string]string{c.bad: "unhealthy"}})
			rep, err := u.Update(ctx, bad)
			if err == nil {
				t.Fatal("an unhealthy release was committed")
			}
			var ue *docker.UnhealthyError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), "rolled back to 1.1.0") {
				t.Fatalf("err = %v", err)
			}
			f.expectRelease(t, v110)
			if f.config(t) != initialConfig {
				t.Fatalf("config after rollback: %q", f.config(t))
			}
			t.Logf("%v", err)
			t.Logf("failed health gate -> 1.1.0 serving again in %s", rep.RollbackTook.Round(time.Millisecond))
			if rep.RollbackTook > 15*time.Second {
				t.Errorf("rollback took %s, target under 15s", rep.RollbackTook)
			}
		}) {
			return
		}
	}

	for _, c := range []struct {
		name, version string
		opts          relOpts
		want          error
	}{
		{"unsigned image refused before anything changes", "1.3.0-unsigned", relOpts{unsigned: true}, sign.ErrUnsigned},
		{"image signed by another key refused before anything changes", "1.3.0-forged", relOpts{signer: f.attacker}, sign.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := f.running(t)
			r := f.rel(t, c.version, c.opts)
			_, err := u.Update(ctx, r)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), "nothing changed") {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			t.Logf("%v", err)
			after := f.running(t)
			for svc, c := range before {
				if after[svc].ID != c.ID || after[svc].State != "running" {
					t.Fatalf("%s changed: %+v -> %+v", svc, c, after[svc])
				}
			}
			for svc, img := range r.Images {
				if _, err := f.engine.Image(ctx, img); err == nil {
					t.Fatalf("the refused image of %s was pulled", svc)
				}
			}
			f.expectRelease(t, v110)
		})
	}

	t.Run("events", func(t *testing.T) {
		f.mu.Lock()
		defer f.mu.Unlock()
		stages := map[string]bool{}
		pulls := 0
		for _, e := range f.events {
			stages[e.Stage] = true
			if e.Pull != nil {
				pulls++
			}
		}
		for _, s := range []string{"verify", "pull", "backup", "swap", "commit", "rollback"} {
			if !stages[s] {
				t.Errorf("no %s event", s)
			}
		}
		if pulls == 0 {
			t.Error("no pull progress event")
		}
	})
}

func TestChainThroughMigration(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u := f.updater(t)
	ctx := context.Background()
	v100 := f.rel(t, "1.0.0", relOpts{})
	v110 := f.rel(t, "1.1.0", relOpts{migrate: "schema2: true"})
	v120 := f.rel(t, "1.2.0", relOpts{})
	ix := &release.Index{Schema: 1, Releases: []release.Release{*v100, *v110, *v120}}

	if _, err := u.Update(ctx, v100); err != nil {
		t.Fatal(err)
	}
	chain, err := ix.Plan(release.Stable, v100.Version, v120.Version)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain.Steps) != 2 || chain.Steps[0].Release.Version != v110.Version {
		t.Fatalf("chain %s", chain)
	}
	reps, err := u.Walk(ctx, chain)
	if err != nil {
		t.Fatal(err)
	}
	f.expectRelease(t, v120)
	if got := f.config(t); got != initialConfig+"schema2: true\n" {
		t.Fatalf("config after the chain: %q, want 1.1.0's migration applied once", got)
	}
	for _, r := range reps {
		t.Logf("%s -> %s in %s", r.From, r.To, r.Took.Round(time.Millisecond))
	}

	t.Run("failed update after a migration restores config and volume", func(t *testing.T) {
		before := f.config(t)
		bad := f.rel(t, "1.3.0", relOpts{migrate: "schema3: true", modes: map[string]string{"admin": "unhealthy"}})
		_, err := u.Update(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "rolled back to 1.2.0") {
			t.Fatalf("err = %v", err)
		}
		f.expectRelease(t, v120)
		if got := f.config(t); got != before {
			t.Fatalf("config %q after rollback, want %q", got, before)
		}
	})

	t.Run("a failing migration changes nothing", func(t *testing.T) {
		before := f.config(t)
		bad := f.rel(t, "1.4.0", relOpts{migrate: "fail"})
		_, err := u.Update(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "exited with code 1") {
			t.Fatalf("err = %v", err)
		}
		f.expectRelease(t, v120)
		if f.config(t) != before {
			t.Fatal("config changed")
		}
	})
}

func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		crash     string
		committed bool // whether the recovered install is at the new version
	}{
		{"killed after the backup", "backup", false},
		{"killed mid-swap", "swap:ami-gateway", false},
		{"killed after the swap, before the commit", "swap", false},
		{"killed while committing", "committing", true},
	}
	f := newFixture(t)
	ctx := context.Background()
	v100 := f.rel(t, "1.0.0", relOpts{})
	v110 := f.rel(t, "1.1.0", relOpts{migrate: "schema2: true"})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := f.updater(t)
			if st, _ := LoadState(f.dataDir); st.Version != v100.Version {
				if _, err := u.Update(ctx, v100); err != nil {
					t.Fatal(err)
				}
			}
			u.crashAfter = c.crash
			if _, err := u.Update(ctx, v110); !errors.Is(err, errCrash) {
				t.Fatalf("err = %v, want the simulated crash", err)
			}
			if j, _ := LoadJournal(f.dataDir); j == nil {
				t.Fatal("no journal after the crash")
			}
			// A new supervisor starts.
			u2 := f.updater(t)
			if _, err := u2.Update(ctx, v110); err == nil || !strings.Contains(err.Error(), "unfinished") {
				t.Fatalf("an update started over an unfinished one: %v", err)
			}
			start := time.Now()
			j, err := u2.Recover(ctx)
			if err != nil || j == nil {
				t.Fatalf("recover: %v (journal %v)", err, j)
			}
			t.Logf("recovered from a crash at %q in %s", c.crash, time.Since(start).Round(time.Millisecond))
			want, wantConfig := v100, initialConfig
			if c.committed {
				want, wantConfig = v110, initialConfig+"schema2: true\n"
			}
			f.expectRelease(t, want)
			if got := f.config(t); got != wantConfig {
				t.Fatalf("config %q, want %q", got, wantConfig)
			}
			if j, err := u2.Recover(ctx); j != nil || err != nil {
				t.Fatalf("second recover: %v %v", j, err)
			}
			if c.committed {
				// Back to a clean 1.0.0 for the next case (an update never goes down).
				if err := os.Remove(filepath.Join(f.dataDir, stateFile)); err != nil {
					t.Fatal(err)
				}
				for _, c := range f.running(t) {
					f.engine.Remove(ctx, c.ID)
				}
				if err := os.WriteFile(f.configPath, []byte(initialConfig), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestBusy checks that a second update is refused while one runs.
func TestBusy(t *testing.T) {
	u := &Updater{}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, err := u.Update(context.Background(), &release.Release{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v", err)
	}
	if _, err := u.Recover(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v", err)
	}
}

// TestWatchRevertsCrashLoop commits an update whose gateway passes its gate and then crash-loops
// under its restart policy: the watch reverts to the previous release and its config.
func TestWatchRevertsCrashLoop(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u := f.updater(t)
	ctx := context.Background()
	if _, err := u.Revert(ctx, "test"); !errors.Is(err, ErrNothingToRevert) {
		t.Fatalf("revert with nothing installed: %v", err)
	}
	v100 := f.rel(t, "1.0.0", relOpts{})
	v110 := f.rel(t, "1.1.0", relOpts{migrate: "schema2: true", crashAfter: 1500 * time.Millisecond})
	if _, err := u.Update(ctx, v100); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Update(ctx, v110); err != nil {
		t.Fatalf("the crash-looping release should pass its gate: %v", err)
	}
	if f.config(t) != initialConfig+"schema2: true\n" {
		t.Fatalf("config after the update: %q", f.config(t))
	}
	start := time.Now()
	reverted, err := u.Watch(ctx, 60*time.Second, 250*time.Millisecond, 2)
	if err != nil || !reverted {
		t.Fatalf("watch: reverted %v, err %v", reverted, err)
	}
	t.Logf("crash loop noticed and reverted %s after the commit", time.Since(start).Round(time.Millisecond))
	f.expectRelease(t, v100)
	if f.config(t) != initialConfig {
		t.Fatalf("config after the revert: %q", f.config(t))
	}
	// A revert is not reverted, and a quiet watch does nothing.
	if _, err := u.Revert(ctx, "again"); !errors.Is(err, ErrNothingToRevert) {
		t.Fatalf("second revert: %v", err)
	}
	if reverted, err := u.Watch(ctx, time.Second, 200*time.Millisecond, 2); reverted || err != nil {
		t.Fatalf("quiet watch: %v %v", reverted, err)
	}
	f.expectRelease(t, v100)
}

// TestBackupRestore takes a backup, changes the config and the gateway's volume, and restores.
func TestBackupRestore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	u := f.updater(t)
	ctx := context.Background()
	v100 := f.rel(t, "1.0.0", relOpts{})
	if _, err := u.Update(ctx, v100); err != nil {
		t.Fatal(err)
	}
	starts := func() string {
		t.Helper()
		var buf bytes.Buffer
		if _, err := f.engine.BackupVolume(ctx, f.install+"-gw", v100.Images["ami-gateway"], &buf); err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if err != nil {
				t.Fatalf("no data/starts in the volume: %v", err)
			}
			if h.Name == "data/starts" {
				b, _ := io.ReadAll(tr)
				return string(b)
			}
		}
	}
	before := starts()
	m, err := u.Backup(ctx, "on request")
	if err != nil {
		t.Fatal(err)
	}
	// Change: a config edit, and a gateway restart that writes to its volume.
	os.WriteFile(f.configPath, []byte(initialConfig+"changed: true\n"), 0o600)
	gw := f.running(t)["ami-gateway"]
	if err := f.engine.Stop(ctx, gw.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.engine.Start(ctx, gw.ID); err != nil {
		t.Fatal(err)
	}
	if changed := starts(); changed == before {
		t.Fatal("the restart did not change the volume")
	}
	rep, err := u.Restore(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restored in %s", rep.Took.Round(time.Millisecond))
	f.expectRelease(t, v100)
	if f.config(t) != initialConfig {
		t.Fatalf("config after restore: %q", f.config(t))
	}
	// The backup's volume, plus the one start of the gateway recreated on it.
	if got := starts(); got != before+"1.0.0\n" {
		t.Fatalf("volume after restore: %q, want %q", got, before+"1.0.0\n")
	}
	if gw2 := f.running(t)["ami-gateway"]; gw2.ID == gw.ID {
		t.Fatal("the gateway was not restarted on the restored config")
	}
	bs, _ := u.Backups()
	if len(bs) < 3 {
		t.Fatalf("backups %+v: want the update's, the requested one and the restore's own", bs)
	}

	t.Run("a backup of another version is refused", func(t *testing.T) {
		v110 := f.rel(t, "1.1.0", relOpts{})
		if _, err := u.Update(ctx, v110); err != nil {
			t.Fatal(err)
		}
		if _, err := u.Restore(ctx, m.ID); err == nil || !strings.Contains(err.Error(), "revert to 1.0.0 first") {
			t.Fatalf("err = %v", err)
		}
		f.expectRelease(t, v110)
	})
}
