package serving

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// limits bound what one request may ask for; Options fills them.
type limits struct {
	maxK, maxIDs, maxIDLen int
}

// recRequest is a parsed recommendations request.
type recRequest struct {
	Model       string
	K           int
	ExcludeSeen bool
	Candidates  []string // nil: every item
}

// recBody is the JSON body of POST /v1/users/{user}/recommendations; absent fields take the
// defaults of the GET form.
type recBody struct {
	Model       string    `json:"model"`
	K           *int      `json:"k"`
	ExcludeSeen *bool     `json:"exclude_seen"`
	Candidates  *[]string `json:"candidates"` // null or absent: every item
}

// scoresBody is the JSON body of POST /v1/scores.
type scoresBody struct {
	Model string `json:"model"`
	Pairs []pair `json:"pairs"`
}

type pair struct {
	User string `json:"user"`
	Item string `json:"item"`
}

const defaultK = 10

func (l limits) k(s string, present bool) (int, error) {
	if !present {
		return min(defaultK, l.maxK), nil
	}
	k, err := strconv.Atoi(s)
	if err != nil || k < 1 || k > l.maxK {
		return 0, badParam(fmt.Sprintf("k must be an integer in [1, %d]; got %q", l.maxK, clip(s)))
	}
	return k, nil
}

func (l limits) checkK(k int) error {
	if k < 1 || k > l.maxK {
		return badParam(fmt.Sprintf("k must be an integer in [1, %d]; got %d", l.maxK, k))
	}
	return nil
}

// checkID rejects empty and overlong ids (what names the id: "user", "item", "candidates[3]").
func (l limits) checkID(what, id string) error {
	if id == "" {
		return badParam(what + " must not be empty")
	}
	if len(id) > l.maxIDLen {
		return badParam(fmt.Sprintf("%s is longer than %d bytes", what, l.maxIDLen))
	}
	return nil
}

func (l limits) checkIDs(what string, ids []string) error {
	if len(ids) > l.maxIDs {
		return badParam(fmt.Sprintf("%s has %d ids; at most %d", what, len(ids), l.maxIDs))
	}
	for i, id := range ids {
		if err := l.checkID(fmt.Sprintf("%s[%d]", what, i), id); err != nil {
			return err
		}
	}
	return nil
}

// parseRecQuery reads k, model, exclude_seen and candidates (comma-separated, or repeated)
// from a GET request's query.
func (l limits) parseRecQuery(q url.Values) (recRequest, error) {
	r := recRequest{ExcludeSeen: true, Model: q.Get("model")}
	for name := range q {
		switch name {
		case "k", "model", "exclude_seen", "candidates":
		default:
			return r, badParam(fmt.Sprintf("unknown query parameter %q (known: k, model, exclude_seen, candidates)", clip(name)))
		}
	}
	var err error
	if r.K, err = l.k(q.Get("k"), q.Has("k")); err != nil {
		return r, err
	}
	if q.Has("exclude_seen") {
		if r.ExcludeSeen, err = strconv.ParseBool(q.Get("exclude_seen")); err != nil {
			return r, badParam(fmt.Sprintf("exclude_seen must be true or false; got %q", clip(q.Get("exclude_seen"))))
		}
	}
	if q.Has("candidates") {
		r.Candidates = []string{}
		for _, v := range q["candidates"] {
			for _, id := range strings.Split(v, ",") {
				r.Candidates = append(r.Candidates, id)
				if len(r.Candidates) > l.maxIDs {
					return r, badParam(fmt.Sprintf("candidates has more than %d ids", l.maxIDs))
				}
			}
		}
		if err := l.checkIDs("candidates", r.Candidates); err != nil {
			return r, err
		}
	}
	return r, nil
}

// decodeRecBody reads the JSON body of a POST recommendations request.
func (l limits) decodeRecBody(body io.Reader) (recRequest, error) {
	var b recBody
	if err := decodeJSON(body, &b); err != nil {
		return recRequest{}, err
	}
	r := recRequest{Model: b.Model, K: min(defaultK, l.maxK), ExcludeSeen: true}
	if b.K != nil {
		if err := l.checkK(*b.K); err != nil {
			return r, err
		}
		r.K = *b.K
	}
	if b.ExcludeSeen != nil {
		r.ExcludeSeen = *b.ExcludeSeen
	}
	if b.Candidates != nil {
		r.Candidates = *b.Candidates // [] ranks nothing
		if err := l.checkIDs("candidates", r.Candidates); err != nil {
			return r, err
		}
	}
	return r, nil
}

// decodeScoresBody reads the JSON body of POST /v1/scores.
func (l limits) decodeScoresBody(body io.Reader) (scoresBody, error) {
	var b scoresBody
	if err := decodeJSON(body, &b); err != nil {
		return b, err
	}
	if len(b.Pairs) == 0 {
		return b, badParam("pairs must hold at least one {\"user\", \"item\"} pair")
	}
	if len(b.Pairs) > l.maxIDs {
		return b, badParam(fmt.Sprintf("pairs has %d pairs; at most %d", len(b.Pairs), l.maxIDs))
	}
	for i, p := range b.Pairs {
		if err := l.checkID(fmt.Sprintf("pairs[%d].user", i), p.User); err != nil {
			return b, err
		}
		if err := l.checkID(fmt.Sprintf("pairs[%d].item", i), p.Item); err != nil {
			return b, err
		}
	}
	return b, nil
}

// decodeJSON decodes exactly one JSON object into v: unknown fields and trailing data are
// errors, so that a typo in a field name does not silently fall back to a default.
func decodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return jsonError(err)
		}
		return &apiError{400, CodeBadJSON, "the body holds more than one JSON value"}
	}
	return nil
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, new(*http.MaxBytesError)):
		return err // classify answers 413
	case errors.Is(err, io.EOF):
		return &apiError{400, CodeBadJSON, "the body is empty; expected a JSON object"}
	case errors.As(err, &se):
		return &apiError{400, CodeBadJSON, fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)}
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "the body"
		}
		return &apiError{400, CodeBadJSON, fmt.Sprintf("%s must be %s, not a JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{400, CodeBadJSON, "the body ends inside a JSON value"}
	}
	return &apiError{400, CodeBadJSON, clip(err.Error())}
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64":
		return "an integer"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct":
		return "an object"
	}
	return "a " + k
}

// clip shortens client input quoted back in messages.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
