package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// routingWord is what a pbx name may hold: it becomes one word of the routing key call.<pbx>.<kind>,
// where a dot would split it and * or # would be wildcards.
var routingWord = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

var countryCode = regexp.MustCompile(`^[A-Z]{2}$`)

// amiEventClasses are the classes Asterisk's Login Events mask accepts (manager.c).
var amiEventClasses = []string{
	"on", "off", "all", "system", "call", "log", "verbose", "command", "agent", "user", "config",
	"dtmf", "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
	"message",
}

// LogLevels are the levels log.level accepts (the logging package parses the same words).
func LogLevels() []string { return []string{"trace", "debug", "info", "warn", "warning", "error"} }

// Validate checks the whole config and returns every problem at once (a Problems), each naming the
// key, the bad value (never a secret's) and the fix.
func (c *Config) Validate() error {
	var ps Problems
	if !routingWord.MatchString(c.PBX) {
		if c.PBX == "" {
			ps.add("pbx", "not set: name this PBX with letters, digits, - and _ (e.g. pbx1); it goes into the routing key call.<pbx>.<kind>")
		} else {
			ps.add("pbx", "%q cannot be used in a routing key: use only letters, digits, - and _ (e.g. pbx1)", c.PBX)
		}
	}
	ps = append(ps, c.AMI.problems("ami")...)
	ps = append(ps, c.Classify.problems("classify")...)
	ps = append(ps, c.RabbitMQ.problems("rabbitmq")...)
	ps = append(ps, c.Redis.problems("redis")...)
	ps = append(ps, c.Log.problems("log")...)
	ps = append(ps, c.Supervisor.problems("supervisor")...)
	switch c.CRM {
	case "":
	case "bitrix":
		ps = append(ps, c.Bitrix.problems("bitrix")...)
	case "amo":
		ps = append(ps, c.Amo.problems("amo")...)
	default:
		ps.add("crm", "%q is not a CRM ringbridge connects to: write bitrix or amo", c.CRM)
	}
	for _, name := range sortedKeys(c.HTTP) {
		ps = append(ps, c.HTTP[name].problems("http."+name)...)
	}
	return ps.err()
}

// Validate checks the AMI section alone.
func (a AMI) Validate() error { return a.problems("ami").err() }

// Validate checks the classify section alone (ami-gateway replay --config reads only this one).
func (c Classify) Validate() error { return c.problems("classify").err() }

// Validate checks the rabbitmq section alone.
func (r RabbitMQ) Validate() error { return r.problems("rabbitmq").err() }

// Validate checks the redis section alone.
func (r Redis) Validate() error { return r.problems("redis").err() }

// Validate checks the log section alone.
func (l Log) Validate() error { return l.problems("log").err() }

func (a AMI) problems(p string) Problems {
	var ps Problems
	checkHostPort(&ps, p+".address", a.Address, DefaultAMIPort, false)
	if a.Username == "" {
		ps.add(p+".username", "not set: write the account name from Asterisk's manager.conf")
	}
	if a.Secret.IsZero() {
		ps.add(p+".secret", "not set: write the account's secret from manager.conf, or set %sAMI_SECRET", EnvPrefix)
	}
	if a.Auth != "md5" && a.Auth != "plain" {
		ps.add(p+".auth", "%q is not an auth method: write md5 (the secret never crosses the wire) or plain", a.Auth)
	}
	checkEvents(&ps, p+".events", a.Events)
	checkPositive(&ps, p+".ping_interval", a.PingInterval.String(), a.PingInterval > 0, "10s")
	checkPositive(&ps, p+".ping_timeout", a.PingTimeout.String(), a.PingTimeout > 0, "5s")
	if a.PingInterval > 0 && a.PingTimeout > a.PingInterval {
		ps.add(p+".ping_timeout", "%s is longer than ping_interval %s: make it shorter, e.g. half of it", a.PingTimeout, a.PingInterval)
	}
	checkPositive(&ps, p+".reconnect_min", a.ReconnectMin.String(), a.ReconnectMin > 0, "1s")
	checkPositive(&ps, p+".reconnect_max", a.ReconnectMax.String(), a.ReconnectMax > 0, "30s")
	if a.ReconnectMin > 0 && a.ReconnectMax > 0 && a.ReconnectMin > a.ReconnectMax {
		ps.add(p+".reconnect_min", "%s is longer than reconnect_max %s: make it shorter or raise reconnect_max", a.ReconnectMin, a.ReconnectMax)
	}
	checkPositive(&ps, p+".connect_timeout", a.ConnectTimeout.String(), a.ConnectTimeout > 0, "5s")
	return ps
}

func checkPositive(ps *Problems, path, shown string, ok bool, example string) {
	if !ok {
		ps.add(path, "%s is not a positive duration: write e.g. %s", shown, example)
	}
}

func checkEvents(ps *Problems, path, events string) {
	if strings.TrimSpace(events) == "" {
		ps.add(path, "not set: write %s", DefaultAMIEvents)
		return
	}
	have := map[string]bool{}
	for _, e := range strings.Split(events, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if !slices.Contains(amiEventClasses, e) {
			hint := ""
			if s := suggest(e, amiEventClasses); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			ps.add(path, "%q is not an AMI event class%s: write a comma-separated list such as %s", e, hint, DefaultAMIEvents)
			return
		}
		have[e] = true
	}
	if have["off"] || !(have["on"] || have["all"] || have["call"]) {
		ps.add(path, "%q leaves out call events, so no call would be seen: write %s", events, DefaultAMIEvents)
	}
}

// checkHostPort checks a host:port address; emptyHostOK allows ":8080" for listeners.
func checkHostPort(ps *Problems, path, addr string, examplePort int, emptyHostOK bool) {
	if addr == "" {
		ps.add(path, "not set: write host:port, e.g. 127.0.0.1:%d", examplePort)
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) && strings.Contains(ae.Err, "missing port") {
			if _, numErr := strconv.Atoi(addr); numErr == nil && emptyHostOK {
				ps.add(path, "%q has no host: write :%s to listen on every address, or host:%s", addr, addr, addr)
				return
			}
			ps.add(path, "%q has no port: write host:port, e.g. %s", addr, net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(examplePort)))
		} else {
			ps.add(path, "%q is not host:port: write e.g. 127.0.0.1:%d (an IPv6 host in brackets: [::1]:%d)", addr, examplePort, examplePort)
		}
		return
	}
	if host == "" && !emptyHostOK {
		ps.add(path, "%q has no host: write host:port, e.g. 127.0.0.1%s", addr, addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		ps.add(path, "%q: port %q is not a number from 1 to 65535: write e.g. %s", addr, port, net.JoinHostPort(host, strconv.Itoa(examplePort)))
	}
}

func (c Classify) problems(p string) Problems {
	var ps Problems
	if len(c.ExtensionChannels) == 0 {
		ps.add(p+".extension_channels", "empty: no channel would be an employee's phone; write at least one pattern, e.g. ['%s']", DefaultExtensionChannel)
	}
	for i, pat := range c.ExtensionChannels {
		path := fmt.Sprintf("%s.extension_channels[%d]", p, i)
		re := checkRegexp(&ps, path, pat)
		if re != nil && !slices.Contains(re.SubexpNames(), "num") {
			ps.add(path, "%s has no named group num: mark the extension number with (?P<num>...), e.g. '%s'", show(pat), DefaultExtensionChannel)
		}
	}
	if c.ExtensionNumber != "channel" && c.ExtensionNumber != "callerid" {
		ps.add(p+".extension_number", "%q is not a source: write channel (the num group) or callerid (the channel's CallerIDNum)", c.ExtensionNumber)
	}
	for i, pat := range c.TrunkChannels {
		checkRegexp(&ps, fmt.Sprintf("%s.trunk_channels[%d]", p, i), pat)
	}
	checkContexts(&ps, p+".inbound_contexts", c.InboundContexts)
	checkContexts(&ps, p+".internal_contexts", c.InternalContexts)
	for _, in := range c.InboundContexts {
		if slices.Contains(c.InternalContexts, in) {
			ps.add(p+".internal_contexts", "%q is also in inbound_contexts: a context is either inbound or internal; remove it from one list", in)
		}
	}
	if c.Country != "" && !countryCode.MatchString(c.Country) {
		fix := "write a two-letter ISO 3166 code, e.g. RU"
		if up := strings.ToUpper(c.Country); countryCode.MatchString(up) {
			fix = "write " + up
		}
		ps.add(p+".country", "%q is not a country code: %s (or leave it empty to keep numbers as dialled)", c.Country, fix)
	}
	return ps
}

func checkRegexp(ps *Problems, path, pat string) *regexp.Regexp {
	re, err := regexp.Compile(pat)
	if err != nil {
		why := err.Error()
		var se *syntax.Error
		if errors.As(err, &se) {
			why = string(se.Code) // the pattern is already quoted in the message
		}
		ps.add(path, "%s is not a valid regular expression (%s): fix the pattern", show(pat), why)
		return nil
	}
	return re
}

func checkContexts(ps *Problems, path string, ctxs []string) {
	for i, c := range ctxs {
		if c == "" || strings.ContainsAny(c, " \t,;") {
			ps.add(fmt.Sprintf("%s[%d]", path, i), "%q is not a dialplan context name: write the name as in extensions.conf, e.g. from-trunk", c)
		}
	}
}

func (r RabbitMQ) problems(p string) Problems {
	var ps Problems
	// The URL holds a password: its messages show the host at most, never the URL.
	raw := r.URL.Reveal()
	switch u, err := url.Parse(raw); {
	case raw == "":
		ps.add(p+".url", "not set: write amqp://user:password@host:5672/vhost")
	case err != nil:
		ps.add(p+".url", "is not a valid URL: write amqp://user:password@host:5672/vhost (percent-encode special characters in the password)")
	case u.Scheme != "amqp" && u.Scheme != "amqps":
		ps.add(p+".url", "scheme %q is not amqp or amqps: write amqp://user:password@host:5672/vhost", u.Scheme)
	case u.Hostname() == "":
		ps.add(p+".url", "has no host: write amqp://user:password@host:5672/vhost")
	case u.Port() != "":
		if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
			ps.add(p+".url", "port %q is not a number from 1 to 65535: write e.g. %s:5672", u.Port(), u.Hostname())
		}
	}
	if r.Prefetch < 1 || r.Prefetch > 65535 {
		ps.add(p+".prefetch", "%d is out of range: write a number from 1 to 65535, e.g. %d", r.Prefetch, DefaultRabbitMQPrefetch)
	}
	return ps
}

func (r Redis) problems(p string) Problems {
	var ps Problems
	checkHostPort(&ps, p+".address", r.Address, 6379, false)
	if r.DB < 0 {
		ps.add(p+".db", "%d is negative: write a database number, 0 by default", r.DB)
	}
	return ps
}

func (l Log) problems(p string) Problems {
	var ps Problems
	if !slices.Contains(LogLevels(), strings.ToLower(l.Level)) {
		ps.add(p+".level", "%q is not a level: write one of %s", l.Level, strings.Join(LogLevels(), ", "))
	}
	if l.Format != "json" && l.Format != "text" {
		ps.add(p+".format", "%q is not a format: write json (for containers) or text", l.Format)
	}
	return ps
}

func (h HTTP) problems(p string) Problems {
	var ps Problems
	if h.Listen != "" {
		checkHostPort(&ps, p+".listen", h.Listen, 8080, true)
	}
	return ps
}

// show quotes a value for a message. Unlike %q it leaves backslashes alone when it can, so a
// regular expression reads as it is written in the file.
func show(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if r == '"' || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return `"` + s + `"`
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
