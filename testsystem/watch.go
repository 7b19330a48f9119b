package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ringbridge/ringbridge/internal/bus"
	"github.com/ringbridge/ringbridge/internal/callevent"
)

// runWatch prints the call events of a PBX as they are published: `testsystem watch --pbx demo`.
// It reads from a queue of its own (deleted when it exits), so it takes nothing from the
// connectors.
func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pbx := fs.String("pbx", "*", "the PBX whose calls to show (* for all)")
	amqpURL := fs.String("amqp", envOr("RINGBRIDGE_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ URL")
	asJSON := fs.Bool("json", false, "print each event as its JSON line")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	b, err := bus.Dial(dctx, bus.Config{URL: *amqpURL, Name: "testsystem.watch"})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "testsystem watch: %v\n", err)
		return 1
	}
	defer b.Close(context.Background())
	host, _ := os.Hostname()
	spec := bus.QueueSpec{
		Name:     fmt.Sprintf("testsystem.watch.%s.%d", host, os.Getpid()),
		Exchange: bus.ExchangeCalls,
		Keys:     []string{"call." + *pbx + ".*"},
	}
	defer b.DeleteQueue(context.Background(), spec)
	fmt.Fprintf(stderr, "watching call events of pbx %s (Ctrl-C to stop)\n", *pbx)
	err = b.Consume(ctx, spec, func(_ context.Context, d bus.Delivery) error {
		if *asJSON {
			fmt.Fprintln(stdout, string(d.Body))
			return nil
		}
		e, err := callevent.Unmarshal(d.Body)
		if err != nil {
			fmt.Fprintf(stderr, "testsystem watch: %v\n", err)
			return bus.Permanent(err)
		}
		fmt.Fprintln(stdout, describe(e))
		return nil
	})
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "testsystem watch: %v\n", err)
		return 1
	}
	return 0
}

// describe renders one call event as a line a person reads.
func describe(e *callevent.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s %-11s %-9s", e.At.Local().Format("15:04:05"), e.PBX, e.Kind, e.Direction)
	switch e.Direction {
	case callevent.Inbound:
		fmt.Fprintf(&b, " %s -> %s", orDash(e.External), orDash(e.Line))
	case callevent.Outbound:
		fmt.Fprintf(&b, " ext %s -> %s", orDash(e.Extension), orDash(e.External))
	}
	switch e.Kind {
	case callevent.Ringing, callevent.Answered, callevent.Transferred:
		fmt.Fprintf(&b, "  ext %s", e.Extension)
	case callevent.Ended:
		fmt.Fprintf(&b, "  %s", e.Disposition)
		if e.AnsweredBy != "" {
			fmt.Fprintf(&b, " by %s", e.AnsweredBy)
		}
		fmt.Fprintf(&b, ", rang %s, ring %ds, talk %ds, responsible %s", strings.Join(e.ExtensionsRang, ","), e.RingSeconds, e.TalkSeconds, orDash(e.Extension))
		for _, t := range e.Transfers {
			fmt.Fprintf(&b, ", %s transfer %s->%s", t.Kind, t.From, t.To)
		}
		if e.Recording != "" {
			fmt.Fprintf(&b, ", recording %s", e.Recording)
		}
	}
	if e.CRMCallID != "" {
		fmt.Fprintf(&b, "  crm %s", e.CRMCallID)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
