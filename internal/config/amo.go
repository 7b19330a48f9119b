package config

import "net/url"

// Amo is connector-amo's section: how it reaches the amoCRM (Kommo) account and the rules it
// applies. Read when crm is amo.
type Amo struct {
	// Account is the account's address, e.g. https://company.amocrm.ru (or .kommo.com).
	Account string `yaml:"account"`
}

func (a Amo) problems(p string) Problems {
	var ps Problems
	if u, err := url.Parse(a.Account); a.Account == "" || err != nil || u.Scheme == "" || u.Host == "" {
		ps.add(p+".account", "%q is not the account's address: write it as https://company.amocrm.ru", a.Account)
	}
	return ps
}
