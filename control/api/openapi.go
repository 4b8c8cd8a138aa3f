package api

import "strings"

// Endpoint describes one route as the OpenAPI document names it.
type Endpoint struct {
	Method string
	Path   string // "/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json"
	Params []string
	Admin  bool
}

// Endpoints lists the API's routes (for the test that holds openapi.json
// to them).
func Endpoints() []Endpoint {
	var out []Endpoint
	names := strings.NewReplacer("{acct}/", "{AccountSid}/", "{acct}", "{AccountSid}.json", "{call}", "{CallSid}.json",
		"{num}", "{PhoneNumberSid}.json", "{user}", "{UserSid}.json", "{msg}", "{MessageSid}.json")
	for _, r := range (&API{}).routes() {
		method, path, _ := strings.Cut(r.pattern, " ")
		out = append(out, Endpoint{Method: method, Path: names.Replace(path), Params: r.params, Admin: r.admin})
	}
	return out
}
