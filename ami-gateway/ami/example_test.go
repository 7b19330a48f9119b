package ami_test

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/ami-gateway/ami"
)

// The consumer loop of a gateway: events and connection changes come in one ordered stream.
// Calling Action or ActionList from this loop is safe: replies and list items do not go through
// the event queue.
func ExampleClient() {
	ctx := context.Background()
	c, err := ami.New(ami.Config{
		Address:      "pbx.example:5038",
		Username:     "crm",
		Secret:       "from-the-config-file",
		Events:       "call,cdr,agent,dialplan",
		PingInterval: 10 * time.Second,
		Logger:       logrus.StandardLogger(),
	})
	if err != nil {
		return
	}
	defer c.Close()
	for ev := range c.Events() {
		switch {
		case ev.State != nil && ev.State.State == ami.StateConnected:
			// First connection or a reconnect: rebuild the live state from a snapshot.
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			channels, err := c.ActionList(lctx, (&ami.Message{}).Add("Action", "CoreShowChannels"))
			cancel()
			_, _ = channels, err
		case ev.State != nil:
			// Disconnected: ev.State.Err says why (ErrQueueOverflow, ErrPingTimeout, ...).
		default:
			_ = ev.Msg.Event() // hand the event to the correlator
		}
	}
}
