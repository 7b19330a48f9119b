package config

import (
	"slices"
	"strings"
	"testing"
)

func TestDumpRedactsEverySecret(t *testing.T) {
	c := validConfig()
	c.RabbitMQ.URL = "amqp://user:mq-pass@mq:5672/"
	out, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"s3cr3t-ami", "redis-pass", "mq-pass"} {
		if strings.Contains(string(out), s) {
			t.Errorf("dump shows %q:\n%s", s, out)
		}
	}
	if n := strings.Count(string(out), "<secret>"); n != 3 {
		t.Errorf("%d <secret> markers, want 3:\n%s", n, out)
	}
	if !strings.Contains(string(out), "pbx: pbx1") {
		t.Errorf("dump lost plain values:\n%s", out)
	}
	if c.AMI.Secret.Reveal() != "s3cr3t-ami" {
		t.Error("Dump changed the original config")
	}
}

func TestRedactedKeepsEmptySecretsEmpty(t *testing.T) {
	c := validConfig()
	c.Redis.Password = ""
	r := c.Redacted()
	if r.Redis.Password != "" || r.AMI.Secret.Reveal() != "<secret>" {
		t.Fatalf("redis %q ami %q", r.Redis.Password.Reveal(), r.AMI.Secret.Reveal())
	}
	r.HTTP["admin"] = HTTP{Listen: ":1"}
	r.Classify.InboundContexts[0] = "changed"
	if c.HTTP["admin"].Listen != ":8080" || c.Classify.InboundContexts[0] != "from-trunk" {
		t.Fatal("Redacted shares maps or slices with the original")
	}
}

func TestSecrets(t *testing.T) {
	c := validConfig()
	c.RabbitMQ.URL = "amqp://user:p%40ss@mq:5672/"
	got := c.Secrets()
	for _, want := range []string{"s3cr3t-ami", "redis-pass", "amqp://user:p%40ss@mq:5672/", "p@ss", "p%40ss"} {
		if !slices.Contains(got, want) {
			t.Errorf("Secrets() lacks %q: %q", want, got)
		}
	}
}
