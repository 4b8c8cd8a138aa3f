package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"sbc/control/api"
)

// TestOpenAPIMatchesRoutes holds the served openapi.json to the real
// routes: the same paths and methods, the same parameters, operator-only
// routes marked.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newEnv(t, "")
	res, err := e.http.Get(e.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	type operation struct {
		Summary    string `json:"summary"`
		Parameters []struct {
			Name string `json:"name"`
			In   string `json:"in"`
		} `json:"parameters"`
		RequestBody *struct {
			Content map[string]struct {
				Schema struct {
					Properties map[string]any `json:"properties"`
				} `json:"schema"`
			} `json:"content"`
		} `json:"requestBody"`
	}
	var doc struct {
		OpenAPI string                          `json:"openapi"`
		Paths   map[string]map[string]operation `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("not an OpenAPI 3 document: %v", err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+path] = true
		}
	}
	delete(documented, "GET /openapi.json")
	for _, ep := range api.Endpoints() {
		key := ep.Method + " " + ep.Path
		op, ok := doc.Paths[ep.Path][strings.ToLower(ep.Method)]
		if !ok {
			t.Errorf("%s is served but not in openapi.json", key)
			continue
		}
		delete(documented, key)
		var params []string
		for _, p := range op.Parameters {
			if p.In == "query" {
				params = append(params, p.Name)
			}
		}
		if op.RequestBody != nil {
			for name := range op.RequestBody.Content["application/x-www-form-urlencoded"].Schema.Properties {
				params = append(params, name)
			}
		}
		want := slices.Clone(ep.Params)
		slices.Sort(params)
		slices.Sort(want)
		if !slices.Equal(params, want) {
			t.Errorf("%s: openapi.json has parameters %v; the route takes %v", key, params, want)
		}
		if ep.Admin != strings.Contains(op.Summary, "(operator only)") {
			t.Errorf("%s: operator-only is %v, the summary %q does not say so", key, ep.Admin, op.Summary)
		}
	}
	for key := range documented {
		t.Errorf("%s is in openapi.json but not served", key)
	}
	// And each documented path answers (not the catch-all 404) for the
	// operator: a route that exists, even if the resource does not.
	for _, ep := range api.Endpoints() {
		if ep.Method != "GET" || strings.Contains(ep.Path, "Sid}.json") && !strings.HasSuffix(ep.Path, "{AccountSid}.json") {
			continue
		}
		acct, _ := e.newAccountOnce(t)
		req, _ := http.NewRequest("GET", e.base+strings.ReplaceAll(ep.Path, "{AccountSid}", acct), nil)
		req.SetBasicAuth(e.adminID, e.adminTk)
		res, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Errorf("GET %s: %d", ep.Path, res.StatusCode)
		}
	}
}
