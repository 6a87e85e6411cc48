package serving

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

// Error codes of the JSON error body {"error": {"code": ..., "message": ...}}. Clients
// branch on the code; the message is for people.
const (
	CodeBadParameter     = "bad_parameter"      // 400: a query or body value is invalid
	CodeBadJSON          = "bad_json"           // 400: the body is not the expected JSON
	CodeUnauthorized     = "unauthorized"       // 401: missing or wrong bearer token
	CodeNotFound         = "not_found"          // 404: no such route
	CodeUnknownUser      = "unknown_user"       // 404: the user has no state (only where there is no fallback)
	CodeUnknownItem      = "unknown_item"       // 404
	CodeUnknownModel     = "unknown_model"      // 404
	CodeNoEmbedding      = "no_embedding"       // 404: similar by image of an item without an image embedding
	CodeMethodNotAllowed = "method_not_allowed" // 405
	CodeBodyTooLarge     = "body_too_large"     // 413
	CodeUnsupportedMedia = "unsupported_media"  // 415: a body that is not application/json
	CodeCanceled         = "canceled"           // 499: the client went away
	CodeInternal         = "internal"           // 500
	CodeNotReady         = "not_ready"          // 503: the model state is not loaded yet, or the server is stopping
	CodeTimeout          = "timeout"            // 504: the request ran past the server's timeout
)

// StatusClientClosed is the status recorded (nginx's convention) when the client cancels.
const StatusClientClosed = 499

// apiError is an error with its HTTP status and code.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func badParam(msg string) *apiError { return &apiError{http.StatusBadRequest, CodeBadParameter, msg} }

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// classify maps an error from a handler or the Backend to its answer. ctxErr is the request
// context's error: a backend that ignores the context but returns late still answers 504.
func classify(err error, ctxErr error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return &apiError{http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "request body larger than " + strconv.FormatInt(mbe.Limit, 10) + " bytes"}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctxErr, context.DeadlineExceeded):
		return &apiError{http.StatusGatewayTimeout, CodeTimeout, "the request took longer than the server's timeout"}
	case errors.Is(err, context.Canceled):
		return &apiError{StatusClientClosed, CodeCanceled, "request canceled"}
	case errors.Is(err, ErrNotReady):
		return &apiError{http.StatusServiceUnavailable, CodeNotReady, "the model state is not loaded yet"}
	case errors.Is(err, ErrUnknownModel):
		return &apiError{http.StatusNotFound, CodeUnknownModel, err.Error()}
	case errors.Is(err, ErrUnknownUser):
		return &apiError{http.StatusNotFound, CodeUnknownUser, err.Error()}
	case errors.Is(err, ErrUnknownItem):
		return &apiError{http.StatusNotFound, CodeUnknownItem, err.Error()}
	case errors.Is(err, ErrNoEmbedding):
		return &apiError{http.StatusNotFound, CodeNoEmbedding, err.Error()}
	case errors.Is(err, ErrInvalidArgument):
		return &apiError{http.StatusBadRequest, CodeBadParameter, err.Error()}
	}
	return &apiError{http.StatusInternalServerError, CodeInternal, "internal error"}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client may be gone; nothing to do
}

func writeError(w http.ResponseWriter, e *apiError) {
	var b errorBody
	b.Error.Code, b.Error.Message = e.code, e.message
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, &b)
}
