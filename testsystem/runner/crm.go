package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/ringbridge/ringbridge/testsystem/crmsim"
	"github.com/ringbridge/ringbridge/testsystem/crmsim/amo"
	"github.com/ringbridge/ringbridge/testsystem/crmsim/bitrix"
	"github.com/ringbridge/ringbridge/testsystem/suite"
)

// crmSim is a CRM simulator as the runner uses it: started fresh for each suite (which is its
// reset: the seed's data, an empty journal, new tokens), on the address the suite's config
// points the connector at.
type crmSim interface {
	// Requests is the journal after sequence number since.
	Requests(since int) []crmsim.Request
	// Env is what the connector needs from the simulator to start: RINGBRIDGE_* overrides.
	Env() map[string]string
	// Ignore are the methods no call's expectations compare: requests of the connector's own
	// housekeeping (token exchange and refresh, account probes).
	Ignore() []string
	// Batched: the CRM's batch requests are expanded before comparing.
	Batched() bool
	Close() error
}

// startCRM starts the simulator of a suite's CRM.
func startCRM(s *suite.Suite) (crmSim, error) {
	switch s.CRM {
	case suite.Amo:
		return startAmo(s)
	case suite.Bitrix:
		return startBitrix(s)
	}
	return nil, fmt.Errorf("no simulator for CRM %q", s.CRM)
}

type amoSim struct {
	s   *amo.Server
	srv *http.Server
}

func startAmo(s *suite.Suite) (crmSim, error) {
	u, err := url.Parse(s.Config.Amo.Account)
	if err != nil {
		return nil, err
	}
	sim := amo.New(amo.Options{Seed: *s.AmoSeed})
	ln, err := net.Listen("tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("the amoCRM simulator cannot listen on %s (amo.account of %s): %w", u.Host, s.ConfigFile, err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed on Close
	return &amoSim{s: sim, srv: srv}, nil
}

func (a *amoSim) Requests(since int) []crmsim.Request { return a.s.Requests(since) }

// Env hands the connector a fresh authorization code, as the integration's settings show one:
// the connector exchanges it for its first token pair, the install path the product uses.
func (a *amoSim) Env() map[string]string {
	return map[string]string{"RINGBRIDGE_AMO_AUTHORIZATION_CODE": a.s.AuthorizationCode()}
}

func (a *amoSim) Ignore() []string {
	return []string{"POST /oauth2/access_token", "GET /api/v4/account"}
}

func (a *amoSim) Batched() bool { return false }

func (a *amoSim) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return a.srv.Close()
	}
	return nil
}

type bitrixSim struct {
	s *bitrix.Server
}

func startBitrix(s *suite.Suite) (crmSim, error) {
	u, err := url.Parse(s.Config.Bitrix.Portal)
	if err != nil {
		return nil, err
	}
	sim := bitrix.New(*s.BitrixSeed)
	if err := sim.Start(u.Host); err != nil {
		return nil, fmt.Errorf("the Bitrix24 simulator cannot listen on %s (bitrix.portal of %s): %w", u.Host, s.ConfigFile, err)
	}
	return &bitrixSim{s: sim}, nil
}

func (b *bitrixSim) Requests(since int) []crmsim.Request { return b.s.Requests(since) }

func (b *bitrixSim) Env() map[string]string { return nil }

func (b *bitrixSim) Ignore() []string {
	// The directory of extensions is read at start and refreshed on a timer, not per call.
	return []string{"oauth.token", "user.get", "app.info", "profile", "scope", "event.bind", "event.get"}
}

func (b *bitrixSim) Batched() bool { return true }

func (b *bitrixSim) Close() error { return b.s.Close() }
