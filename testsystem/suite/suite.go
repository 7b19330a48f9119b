// Package suite loads the system test's suites: a folder testsystem/suites/<crm>/<suite>/ with
// the ringbridge config the services run with (config.yaml), the CRM's starting data (seed.yaml)
// and the test calls (calls/*.yaml: a scenario for the simulated PBX and the CRM requests it must
// and must not cause). A bad file is reported with its name, the field and the fix, every bad
// file at once, before anything is started.
package suite

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/internal/config"
	"github.com/ringbridge/ringbridge/testsystem/amisim"
	"github.com/ringbridge/ringbridge/testsystem/crmsim/amo"
	"github.com/ringbridge/ringbridge/testsystem/crmsim/bitrix"
	"github.com/ringbridge/ringbridge/testsystem/expect"
)

// CRM names a CRM as the suites' folders do.
type CRM string

// The CRMs with suites.
const (
	Amo    CRM = "amo"
	Bitrix CRM = "bx"
)

// CRMs are the folder names under the suites root, in the order suites run.
var CRMs = []CRM{Amo, Bitrix}

// ParseCRM reads a --crm value.
func ParseCRM(s string) (CRM, error) {
	for _, c := range CRMs {
		if string(c) == s {
			return c, nil
		}
	}
	return "", fmt.Errorf("%q is not a CRM: write amo or bx", s)
}

// configCRM is what config.yaml's crm key says for each CRM.
func (c CRM) configCRM() string {
	if c == Bitrix {
		return "bitrix"
	}
	return string(c)
}

// Service is the connector service that serves this CRM.
func (c CRM) Service() string {
	if c == Bitrix {
		return "connector-bx"
	}
	return "connector-amo"
}

// The files of a suite.
const (
	ConfigFile = "config.yaml"
	SeedFile   = "seed.yaml"
	CallsDir   = "calls"
)

// Vars are the placeholders a call's expectations may use; the runner fills them from the call
// as played (fresh ids, the time it was played), as ami-gateway reported it (call_id: the
// Linkedid; started_at: unix seconds; recording: the file name), and from the CRM's answers
// (crm_call_id: the CALL_ID Bitrix24's register returned).
var Vars = []string{"call_id", "pbx", "started_at", "recording", "crm_call_id"}

// Suite is one folder: a config, a seed and test calls.
type Suite struct {
	Name string
	CRM  CRM
	Dir  string
	// ConfigFile is the absolute path of config.yaml: it is mounted into the containers.
	ConfigFile string
	Config     *config.Config
	SeedFile   string
	// AmoSeed or BitrixSeed is the CRM's starting data, by CRM.
	AmoSeed    *amo.Seed
	BitrixSeed *bitrix.Options
	Calls      []*Call
}

// Addresses are the host:port addresses the suite's stack uses on this machine: the simulators'
// and the services' listeners.
func (s *Suite) Addresses() []string {
	cfg := s.Config
	out := []string{cfg.AMI.Address}
	for _, svc := range []string{"ami-gateway", s.CRM.Service()} {
		out = append(out, cfg.HTTP[svc].Listen)
	}
	switch s.CRM {
	case Amo:
		if u, err := url.Parse(cfg.Amo.Account); err == nil {
			out = append(out, u.Host)
		}
		out = append(out, cfg.Amo.Listen)
	case Bitrix:
		if u, err := url.Parse(cfg.Bitrix.Portal); err == nil {
			out = append(out, u.Host)
		}
		out = append(out, cfg.Bitrix.Listen)
	}
	return out
}

// ID names a suite in output and JUnit: crm/name.
func (s *Suite) ID() string { return string(s.CRM) + "/" + s.Name }

// Call is one test call.
type Call struct {
	// Name is the file's name without .yaml.
	Name        string
	File        string
	Description string
	Scenario    *amisim.Scenario
	Expect      *expect.Call
	// Settle is how long the CRM must get no request before the call's journal is compared
	// (0: the runner's default).
	Settle time.Duration
}

// LoadAll reads the suites under root (root/<crm>/<suite>/), optionally only one CRM's and only
// the suites named. A suite named that does not exist is an error; so is a bad file, and every
// bad file is reported.
func LoadAll(root string, crm CRM, names []string) ([]*Suite, error) {
	var suites []*Suite
	var errs []error
	found := map[string]bool{}
	for _, c := range CRMs {
		if crm != "" && c != crm {
			continue
		}
		dir := filepath.Join(root, string(c))
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading suites: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if len(names) > 0 && !wanted(names, c, e.Name()) {
				continue
			}
			found[e.Name()], found[string(c)+"/"+e.Name()] = true, true
			s, err := Load(filepath.Join(dir, e.Name()), c)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			suites = append(suites, s)
		}
	}
	for _, n := range names {
		if !found[n] {
			errs = append(errs, fmt.Errorf("--suite %s: no such suite under %s (a suite is a folder %s/<crm>/<suite>/ with %s)", n, root, root, ConfigFile))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(suites) == 0 {
		return nil, fmt.Errorf("no suites under %s: add a folder %s/<crm>/<suite>/ (see testsystem/README.md)", root, root)
	}
	return suites, nil
}

func wanted(names []string, c CRM, name string) bool {
	for _, n := range names {
		if n == name || n == string(c)+"/"+name {
			return true
		}
	}
	return false
}

// Load reads one suite folder for crm.
func Load(dir string, crm CRM) (*Suite, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("suite %s: %w", dir, err)
	}
	s := &Suite{Name: filepath.Base(abs), CRM: crm, Dir: abs, ConfigFile: filepath.Join(abs, ConfigFile), SeedFile: filepath.Join(abs, SeedFile)}
	var errs []error
	if err := s.loadConfig(dir); err != nil {
		errs = append(errs, err)
	}
	if err := s.loadSeed(dir); err != nil {
		errs = append(errs, err)
	}
	calls, err := loadCalls(filepath.Join(dir, CallsDir))
	if err != nil {
		errs = append(errs, err)
	}
	s.Calls = calls
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := s.crossCheck(dir); err != nil {
		return nil, err
	}
	return s, nil
}

// loadConfig reads config.yaml as the services will (strict keys, validation, no environment),
// and checks what the runner needs of it: the simulators' addresses on 127.0.0.1.
func (s *Suite) loadConfig(dir string) error {
	file := filepath.Join(dir, ConfigFile)
	// The CRM first: a config for the other CRM fails the service's validation with problems
	// that would hide the real mistake (the folder).
	if raw, err := os.ReadFile(file); err == nil {
		if cfg, err := config.Decode(raw, nil); err == nil && cfg.CRM != s.CRM.configCRM() {
			return fmt.Errorf("%s: crm: %q, but the suite is under %s/: write crm: %s, or move the suite", file, cfg.CRM, s.CRM, s.CRM.configCRM())
		}
	}
	cfg, err := config.Load(file, nil)
	if err != nil {
		return err // config's errors name the file, the key, the line and the fix
	}
	s.Config = cfg
	var ps []string
	bad := func(field, format string, args ...any) {
		ps = append(ps, fmt.Sprintf("%s: %s: %s", file, field, fmt.Sprintf(format, args...)))
	}
	if !loopbackPort(cfg.AMI.Address) {
		bad("ami.address", "%q: the runner serves the simulated PBX there, on this machine: write 127.0.0.1:PORT, e.g. 127.0.0.1:25038", cfg.AMI.Address)
	}
	if cfg.AMI.Secret.IsZero() || cfg.AMI.Username == "" {
		bad("ami.username", "the simulated PBX needs the account the gateway logs in with: write ami.username and ami.secret")
	}
	for _, svc := range []string{"ami-gateway", s.CRM.Service()} {
		h, ok := cfg.HTTP[svc]
		if !ok || !loopbackPort(h.Listen) {
			bad("http."+svc+".listen", "%q: the runner asks for /readyz there, and services share this machine's network: write 127.0.0.1:PORT, e.g. 127.0.0.1:%d", h.Listen, map[string]int{"ami-gateway": 29101, "connector-amo": 29103, "connector-bx": 29102}[svc])
		}
	}
	switch s.CRM {
	case Amo:
		if u, err := url.Parse(cfg.Amo.Account); err != nil || u.Scheme != "http" || !loopbackPort(u.Host) {
			bad("amo.account", "%q: the runner serves the amoCRM simulator there: write http://127.0.0.1:PORT, e.g. http://127.0.0.1:28180", cfg.Amo.Account)
		}
		if !loopbackPort(cfg.Amo.Listen) {
			bad("amo.listen", "%q: the connector's public server shares this machine's network: write 127.0.0.1:PORT, e.g. 127.0.0.1:28103", cfg.Amo.Listen)
		}
		if cfg.Amo.Auth == "long_lived" {
			bad("amo.auth", "long_lived: the suites run the OAuth install the product uses (the runner hands the connector an authorization code): write auth: oauth")
		}
	case Bitrix:
		if u, err := url.Parse(cfg.Bitrix.Portal); err != nil || u.Scheme != "http" || !loopbackPort(u.Host) {
			bad("bitrix.portal", "%q: the runner serves the Bitrix24 simulator there: write http://127.0.0.1:PORT, e.g. http://127.0.0.1:28280", cfg.Bitrix.Portal)
		}
		if !loopbackPort(cfg.Bitrix.Listen) {
			bad("bitrix.listen", "%q: the simulated portal posts the install there, on this machine: write 127.0.0.1:PORT, e.g. 127.0.0.1:28102", cfg.Bitrix.Listen)
		}
	}
	if len(ps) > 0 {
		return errors.New(strings.Join(ps, "\n"))
	}
	return nil
}

// loopbackPort: host:port with host 127.0.0.1 and a port, since every part of the stack shares
// this machine's network and nothing else.
func loopbackPort(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	return err == nil && host == "127.0.0.1" && port != "" && port != "0"
}

func (s *Suite) loadSeed(dir string) error {
	file := filepath.Join(dir, SeedFile)
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("%s: missing: write the CRM's users, contacts and leads the calls meet (see testsystem/README.md)", file)
	}
	switch s.CRM {
	case Amo:
		seed, err := amo.LoadSeed(file)
		if err != nil {
			return fmt.Errorf("%s: %w (the fields are those of testsystem/crmsim/amo/testdata/seed.yaml)", file, unwrapSeed(err, file))
		}
		s.AmoSeed = &seed
	case Bitrix:
		opts, err := bitrix.LoadOptions(file)
		if err != nil {
			return fmt.Errorf("%s: %w (the fields are those in testsystem/crmsim/bitrix/README.md, \"Seed from a file\")", file, unwrapSeed(err, file))
		}
		s.BitrixSeed = &opts
	}
	return nil
}

// unwrapSeed drops the file name the simulators' loaders put in their errors: the suite's message
// starts with it already.
func unwrapSeed(err error, file string) error {
	msg := err.Error()
	for _, p := range []string{"amo: seed " + file + ": ", "amo: seed: ", file + ": "} {
		msg = strings.Replace(msg, p, "", 1)
	}
	return errors.New(msg)
}

// crossCheck: the config and the seed must describe the same account.
func (s *Suite) crossCheck(dir string) error {
	cfgFile, seedFile := filepath.Join(dir, ConfigFile), filepath.Join(dir, SeedFile)
	var ps []string
	if s.CRM == Amo {
		in, a := s.AmoSeed.Integration, s.Config.Amo
		if in.ClientID != a.ClientID {
			ps = append(ps, fmt.Sprintf("%s: amo.client_id: %q, but %s integration.client_id is %q: write the same id in both", cfgFile, a.ClientID, seedFile, in.ClientID))
		}
		if in.ClientSecret != a.ClientSecret.Reveal() {
			ps = append(ps, fmt.Sprintf("%s: amo.client_secret differs from %s integration.client_secret: write the same secret in both", cfgFile, seedFile))
		}
		if in.RedirectURI != a.RedirectURI {
			ps = append(ps, fmt.Sprintf("%s: amo.redirect_uri: %q, but %s integration.redirect_uri is %q: write the same address in both", cfgFile, a.RedirectURI, seedFile, in.RedirectURI))
		}
		users := map[int]bool{}
		for _, u := range s.AmoSeed.Users {
			users[u.ID] = true
		}
		for i, u := range a.Users {
			if !users[u.UserID] {
				ps = append(ps, fmt.Sprintf("%s: amo.users[%d].user_id: %d is no user of %s: add it there under users, or map the extension to one of its users", cfgFile, i, u.UserID, seedFile))
			}
		}
	}
	if s.CRM == Bitrix {
		o, b := s.BitrixSeed, s.Config.Bitrix
		if b.Mode == "app" && o.ClientID != b.App.ClientID {
			ps = append(ps, fmt.Sprintf("%s: bitrix.app.client_id: %q, but %s client_id is %q: write the same id in both", cfgFile, b.App.ClientID, seedFile, o.ClientID))
		}
		if b.Mode == "app" && o.ClientSecret != b.App.ClientSecret.Reveal() {
			ps = append(ps, fmt.Sprintf("%s: bitrix.app.client_secret differs from %s client_secret: write the same secret in both", cfgFile, seedFile))
		}
		if b.Mode == "app" && b.App.OAuthServer != b.Portal {
			ps = append(ps, fmt.Sprintf("%s: bitrix.app.oauth_server: %q: the simulator is the OAuth server too: write %s", cfgFile, b.App.OAuthServer, b.Portal))
		}
		if b.Mode == "app" && b.PublicURL == "" {
			ps = append(ps, fmt.Sprintf("%s: bitrix.public_url: not set: write http://%s, where the simulated portal reaches the connector", cfgFile, b.Listen))
		}
	}
	if len(ps) > 0 {
		return errors.New(strings.Join(ps, "\n"))
	}
	return nil
}

// loadCalls reads calls/*.yaml in name order.
func loadCalls(dir string) ([]*Call, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: a suite's test calls are calls/*.yaml (see testsystem/README.md)", dir, err)
	}
	var files []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no test calls (*.yaml) in it: add one (see testsystem/README.md)", dir)
	}
	var calls []*Call
	var errs []error
	for _, f := range files {
		c, err := LoadCall(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		calls = append(calls, c)
	}
	return calls, errors.Join(errs...)
}
