package config

import "net/url"

// Bitrix is connector-bx's section: how it reaches the Bitrix24 portal and the rules it applies.
// Read when crm is bitrix.
type Bitrix struct {
	// Portal is the portal's address, e.g. https://company.bitrix24.ru.
	Portal string `yaml:"portal"`
	// Mode is "app" (a local application with OAuth 2.0: the main mode; telephony register and
	// finish work only in an application's context) or "webhook" (an incoming webhook URL).
	Mode string `yaml:"mode"`
}

func (b Bitrix) problems(p string) Problems {
	var ps Problems
	if u, err := url.Parse(b.Portal); b.Portal == "" || err != nil || u.Scheme == "" || u.Host == "" {
		ps.add(p+".portal", "%q is not the portal's address: write it as https://company.bitrix24.ru", b.Portal)
	}
	if b.Mode != "app" && b.Mode != "webhook" {
		ps.add(p+".mode", "%q is not a mode: write app (a local application, recommended) or webhook", b.Mode)
	}
	return ps
}
