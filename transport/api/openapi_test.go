package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIDocumentsExactlyTheRegisteredRoutes keeps openapi.json true:
// every route on the mux is documented and every documented operation is a
// route.
func TestOpenAPIDocumentsExactlyTheRegisteredRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" {
				continue
			}
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	slices.Sort(documented)

	srv, err := New(newTestEngine(t), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var registered []string
	for _, r := range srv.Routes() {
		// The mux's "/{$}" (exactly "/") is OpenAPI's "/".
		registered = append(registered, strings.Replace(r, "/{$}", "/", 1))
	}
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %q is registered but not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("openapi.json documents %q but no such route is registered", d)
		}
	}
	if len(registered) < 20 {
		t.Fatalf("only %d routes registered: %v", len(registered), registered)
	}
}

// TestOpenAPIReferencesResolve checks every $ref names a defined schema.
func TestOpenAPIReferencesResolve(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	text := string(openAPIDoc)
	const prefix = `"$ref": "#/components/schemas/`
	for i := strings.Index(text, prefix); i >= 0; {
		rest := text[i+len(prefix):]
		name := rest[:strings.IndexByte(rest, '"')]
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("$ref to undefined schema %q", name)
		}
		j := strings.Index(rest, prefix)
		if j < 0 {
			break
		}
		i += len(prefix) + j
	}
}
