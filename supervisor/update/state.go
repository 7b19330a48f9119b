package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ringbridge/ringbridge/supervisor/release"
)

// State is what is installed: a version and the image of each service. It is written at commit
// only, so it always names a whole release that passed its health gate.
type State struct {
	Version  release.Version         `json:"version"`
	Services map[string]ServiceState `json:"services"`
	// ConfigSchema is the config schema the installed release reads (0: not known).
	ConfigSchema int       `json:"config_schema,omitempty"`
	Committed    time.Time `json:"committed"`
}

// ServiceState is one installed service.
type ServiceState struct {
	Image string `json:"image"` // repo@sha256:...
	// ImageID is the local image ID when the image came from an offline bundle (no registry
	// digest to create from).
	ImageID string `json:"image_id,omitempty"`
}

// Phases of an update in the journal.
const (
	// PhaseApplying: config and containers may be anywhere between the two releases; a crash
	// here is rolled back at the next start.
	PhaseApplying = "applying"
	// PhaseCommitting: the new release passed its gate; a crash here is finished at the next start.
	PhaseCommitting = "committing"
	// PhaseRollingBack: a failure is being undone; a crash here is rolled back again.
	PhaseRollingBack = "rolling-back"
)

// Journal is the update in progress, on the supervisor's volume. It exists from the first change
// to the end of the commit or rollback; a supervisor that starts and finds one finishes it.
type Journal struct {
	ID     string `json:"id"`
	Phase  string `json:"phase"`
	From   State  `json:"from"`
	To     State  `json:"to"`
	Backup string `json:"backup,omitempty"`
	// ConfigWritten says the live config was replaced by the migrated one (a rollback puts the
	// backup back).
	ConfigWritten bool `json:"config_written,omitempty"`
	// Migrated says a config migration ran (or, for a revert, that volumes were restored); a
	// rollback then also restores the volumes.
	Migrated bool `json:"migrated,omitempty"`
	// Restore says this puts a backup back for the installed release (no release changes).
	Restore bool `json:"restore,omitempty"`
	// Revert says this goes back to the release a committed update replaced.
	Revert  bool      `json:"revert,omitempty"`
	Steps   []string  `json:"steps"`
	Error   string    `json:"error,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

const (
	stateFile   = "state.json"
	journalFile = "journal.json"
)

// writeJSON writes v to path atomically: a temp file in the same directory, synced, renamed
// over path, and the directory synced, so a power loss leaves the old file or the new one.
func writeJSON(path string, v any) error {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(body, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(dir)
}

// writeFile is writeJSON for raw bytes (the config file), keeping mode.
func writeFile(path string, body []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// readJSON reads path into v; found is false when there is no file.
func readJSON(path string, v any) (found bool, err error) {
	body, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return true, fmt.Errorf("%s: %w", path, err)
	}
	return true, nil
}

// LoadState reads the installed state from dataDir; a zero State when nothing is installed.
func LoadState(dataDir string) (State, error) {
	var st State
	_, err := readJSON(filepath.Join(dataDir, stateFile), &st)
	return st, err
}

// LoadJournal reads the update in progress from dataDir, nil when there is none.
func LoadJournal(dataDir string) (*Journal, error) {
	var j Journal
	found, err := readJSON(filepath.Join(dataDir, journalFile), &j)
	if !found || err != nil {
		return nil, err
	}
	return &j, nil
}

// localImagesFile maps image references to the local image IDs of images loaded from an offline
// bundle: such an image has no repository digest, so it is created by ID.
const localImagesFile = "images.json"

// RecordLocalImage notes that ref was loaded into the Engine as image id (supervisor import), so
// updates and rollbacks create its containers by that ID and never try to pull it.
func RecordLocalImage(dataDir, ref, id string) error {
	m, err := localImages(dataDir)
	if err != nil {
		return err
	}
	m[ref] = id
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dataDir, localImagesFile), m)
}

func localImages(dataDir string) (map[string]string, error) {
	m := map[string]string{}
	if _, err := readJSON(filepath.Join(dataDir, localImagesFile), &m); err != nil {
		return nil, err
	}
	return m, nil
}
