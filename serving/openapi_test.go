package serving

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// openAPIRoutes reads the "METHOD path" pairs of docs/openapi.yaml. The document is YAML;
// its layout (paths at two spaces, methods at four) is fixed, so a line scan suffices and the
// module needs no YAML parser.
func openAPIRoutes(t *testing.T, doc string) []string {
	t.Helper()
	var out []string
	inPaths, path := false, ""
	pathRe := regexp.MustCompile(`^  (/\S*):\s*$`)
	methodRe := regexp.MustCompile(`^    (get|put|post|delete|patch|head|options):\s*$`)
	for _, line := range strings.Split(doc, "\n") {
		switch {
		case line == "paths:":
			inPaths = true
		case inPaths && line != "" && line[0] != ' ':
			inPaths = false
		case inPaths:
			if m := pathRe.FindStringSubmatch(line); m != nil {
				path = m[1]
			} else if m := methodRe.FindStringSubmatch(line); m != nil {
				out = append(out, strings.ToUpper(m[1])+" "+path)
			}
		}
	}
	return out
}

// TestOpenAPIMatchesRoutes: every route of the server is in docs/openapi.yaml and every
// operation of the document is a route; every error code is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	raw, err := os.ReadFile("../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	documented := openAPIRoutes(t, doc)
	if len(documented) == 0 {
		t.Fatal("no operations found in docs/openapi.yaml")
	}
	var served []string
	for _, r := range Routes() {
		served = append(served, r.Method+" "+r.Path)
	}
	slices.Sort(documented)
	slices.Sort(served)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in docs/openapi.yaml", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("docs/openapi.yaml documents %s, which the server does not serve", r)
		}
	}
	for _, c := range []string{CodeBadParameter, CodeBadJSON, CodeUnauthorized, CodeNotFound, CodeUnknownUser,
		CodeUnknownItem, CodeUnknownModel, CodeNoEmbedding, CodeMethodNotAllowed, CodeBodyTooLarge,
		CodeUnsupportedMedia, CodeCanceled, CodeInternal, CodeNotReady, CodeTimeout} {
		if !regexp.MustCompile(`\b` + c + `\b`).MatchString(doc) {
			t.Errorf("error code %s is not in docs/openapi.yaml", c)
		}
	}
	// The public routes are exactly those the document exempts from the bearer token.
	for _, r := range Routes() {
		i := strings.Index(doc, "\n  "+r.Path+":\n")
		if i < 0 {
			continue
		}
		rest := doc[i+1:]
		if j := strings.Index(rest[3:], "\n  /"); j >= 0 {
			rest = rest[:j+3]
		}
		if open := strings.Contains(rest, "security: []"); open == r.auth {
			t.Errorf("%s %s: auth %v in the server, but the document says security: [] is %v", r.Method, r.Path, r.auth, open)
		}
	}
}
