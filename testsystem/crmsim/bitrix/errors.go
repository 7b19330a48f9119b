package bitrix

import (
	"encoding/json"
	"net/http"
)

// apiError is a Bitrix24 error answer: {"error": Code, "error_description": Desc} with Status.
// Texts and statuses are those of the method pages and _includes/system-errors.md in
// bitrix24/b24restdocs (reference §1.12).
type apiError struct {
	Status int
	Code   string
	Desc   string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Desc }

func (e *apiError) body() []byte {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
		Desc  string `json:"error_description"`
	}{e.Code, e.Desc})
	return b
}

// errCore is a method's own error: HTTP 400 with code ERROR_CORE.
func errCore(desc string) *apiError { return &apiError{http.StatusBadRequest, "ERROR_CORE", desc} }

// errEmpty is a method error whose code is an empty string, as attachRecord answers some errors.
func errEmpty(desc string) *apiError { return &apiError{http.StatusBadRequest, "", desc} }

func errWrongAuthType() *apiError {
	return &apiError{http.StatusForbidden, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"}
}

func errMethodNotFound() *apiError {
	return &apiError{http.StatusNotFound, "ERROR_METHOD_NOT_FOUND", "Method not found!"}
}

func errNoAuth() *apiError {
	return &apiError{http.StatusUnauthorized, "NO_AUTH_FOUND", "Wrong authorization data"}
}

func errExpiredToken() *apiError {
	return &apiError{http.StatusUnauthorized, "expired_token", "The access token provided has expired"}
}

// errInvalidToken answers a token the portal never issued. The current system-errors list does
// not name it (reference §1.12 "verify"); the cloud answers it in the OAuth2 server's words.
func errInvalidToken() *apiError {
	return &apiError{http.StatusUnauthorized, "invalid_token", "The access token provided is invalid."}
}

func errInvalidCredentials() *apiError {
	return &apiError{http.StatusUnauthorized, "INVALID_CREDENTIALS", "Invalid request credentials"}
}

func errInsufficientScope(webhook bool) *apiError {
	d := "The request requires higher privileges than provided by the access token"
	if webhook {
		d = "The request requires higher privileges than provided by the webhook token"
	}
	return &apiError{http.StatusUnauthorized, "insufficient_scope", d}
}

func errQueryLimit() *apiError {
	return &apiError{http.StatusServiceUnavailable, "QUERY_LIMIT_EXCEEDED", "Too many requests"}
}

func errOperationTimeLimit() *apiError {
	return &apiError{http.StatusTooManyRequests, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit"}
}

func errBatchLength() *apiError {
	return &apiError{http.StatusBadRequest, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded"}
}

func errBatchMethod() *apiError {
	return &apiError{http.StatusMethodNotAllowed, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"}
}

// ErrorBody is the body the simulator answers for an injected fault with this status and no
// body of its own: the Bitrix24 error a client most plausibly meets with that status.
func ErrorBody(status int) []byte {
	var e *apiError
	switch status {
	case http.StatusBadRequest:
		e = errCore("Injected fault")
	case http.StatusUnauthorized:
		e = errExpiredToken()
	case http.StatusPaymentRequired:
		// What oauth.bitrix.info answers when the app's paid period ended (settings/oauth).
		e = &apiError{status, "PAYMENT_REQUIRED", "Payment required"}
	case http.StatusForbidden:
		// The 403 the telephony connector has to tell apart: webhook used for app-only methods.
		e = errWrongAuthType()
	case http.StatusNotFound:
		e = errMethodNotFound()
	case http.StatusMethodNotAllowed:
		e = errBatchMethod()
	case http.StatusTooManyRequests:
		e = errOperationTimeLimit()
	case http.StatusInternalServerError:
		e = &apiError{status, "INTERNAL_SERVER_ERROR", "Internal server error"}
	case http.StatusServiceUnavailable:
		e = errQueryLimit()
	default:
		if status >= 500 {
			e = &apiError{status, "ERROR_UNEXPECTED_ANSWER", "Server returned an unexpected response"}
		} else {
			e = errCore(http.StatusText(status))
		}
	}
	return e.body()
}
