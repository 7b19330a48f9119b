package amo_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/ringbridge/ringbridge/testsystem/crmsim/amo"
)

// A connector logs a call; the test reads where the account put it.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := amo.New(amo.Options{Seed: amo.Seed{
		Users:    []amo.User{{ID: 7, Name: "Anna", IsAdmin: true}},
		Contacts: []amo.Contact{{ID: 100, Name: "Ivan", Phones: []amo.Phone{{Value: "+7 916 123-45-67"}}}},
	}})
	base, err := s.Start(ctx)
	if err != nil {
		panic(err)
	}
	in := s.IssueTokens()
	body := `[{"direction":"inbound","uniq":"1700000000.42","duration":30,"source":"ringbridge","phone":"89161234567","call_status":4}]`
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v4/calls", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+in.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	c := s.Calls()[0]
	fmt.Println(resp.StatusCode, c.EntityType, c.EntityID, s.Requests(0)[0].Method)
	// Output: 200 contacts 100 POST /api/v4/calls
}
