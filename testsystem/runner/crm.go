package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
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
	// Install does what an admin does in the CRM once the connector runs (Bitrix24: install the
	// application, which posts ONAPPINSTALL to the connector); nothing for amoCRM, whose
	// connector exchanges the authorization code of Env by itself.
	Install(ctx context.Context, s *suite.Suite) error
	// CallID is the CRM's own id of the call among a call's requests (Bitrix24: the CALL_ID
	// register answered), for the placeholder {crm_call_id}; "" when there is none.
	CallID(reqs []crmsim.Request) string
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

func (a *amoSim) Install(context.Context, *suite.Suite) error { return nil }

// CallID: amoCRM's calls carry the connector's uniq, so no id of amoCRM's is needed to follow
// a call.
func (a *amoSim) CallID([]crmsim.Request) string { return "" }

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

// Install installs the application for the portal's first administrator and posts ONAPPINSTALL
// to the connector's install handler, as the portal does when an admin installs it; the
// connector's public server may still be starting, so a refused connection is tried again.
func (b *bitrixSim) Install(ctx context.Context, s *suite.Suite) error {
	inst, err := b.s.IssueInstall(bitrix.InstallOptions{})
	if err != nil {
		return fmt.Errorf("installing the application in the Bitrix24 simulator: %w", err)
	}
	handler := "http://" + s.Config.Bitrix.Listen + "/bitrix/install"
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := b.s.SendAppInstall(ctx, handler, inst)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("posting ONAPPINSTALL to %s (bitrix.listen of %s): %w", handler, s.ConfigFile, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// CallID is the CALL_ID the portal answered the call's first register with: the later requests
// (show, hide, finish, attachRecord) must carry it.
func (b *bitrixSim) CallID(reqs []crmsim.Request) string {
	for _, r := range bitrix.ExpandBatch(reqs) {
		if !strings.EqualFold(r.Method, "telephony.externalcall.register") {
			continue
		}
		var answer struct {
			Result struct {
				CallID string `json:"CALL_ID"`
			} `json:"result"`
		}
		if json.Unmarshal(r.Response, &answer) == nil && answer.Result.CallID != "" {
			return answer.Result.CallID
		}
	}
	return ""
}

func (b *bitrixSim) Close() error { return b.s.Close() }
