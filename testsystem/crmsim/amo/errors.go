package amo

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Problem is amoCRM's error body (application/problem+json). Validation errors (400) add
// validation-errors; OAuth errors add hint.
type Problem struct {
	Hint             string            `json:"hint,omitempty"`
	Title            string            `json:"title"`
	Type             string            `json:"type"`
	Status           int               `json:"status"`
	Detail           string            `json:"detail,omitempty"`
	ValidationErrors []ValidationError `json:"validation-errors,omitempty"`
}

// ValidationError is the errors of one item of a batch, by its request_id.
type ValidationError struct {
	RequestID string       `json:"request_id"`
	Errors    []FieldError `json:"errors"`
}

// FieldError is one invalid field: code as amoCRM names it (NotSupportedChoice, InvalidType,
// FieldMissing, NotBlank), the field's path within the item, and a sentence.
type FieldError struct {
	Code   string `json:"code"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

// The OAuth server's problem type; bodies seen from the real one in
// amocrm/amocrm-api-php issues #123, #235, #315.
const oauthProblemType = "https://developers.amocrm.ru/v3/errors/OAuthProblemJson"

// httpProblem is the plain problem body of an API status; detail texts are the ones seen from
// the real API where known (401: amocrm-api-php #333), descriptive otherwise.
func httpProblem(status int, detail string) Problem {
	title := http.StatusText(status)
	switch status {
	case http.StatusNotFound:
		title = "Not found"
	}
	return Problem{Title: title, Type: "https://httpstatus.es/" + strconv.Itoa(status), Status: status, Detail: detail}
}

// Error bodies for the statuses a connector must handle (issue 5, crm-apis.md §2.7).
var defaultDetails = map[int]string{
	http.StatusBadRequest:          "Request validation failed",
	http.StatusUnauthorized:        "Неверный логин или пароль",
	http.StatusPaymentRequired:     "Account is not paid",
	http.StatusForbidden:           "Account is blocked",
	http.StatusNotFound:            "Not found",
	http.StatusTooManyRequests:     "Too many requests",
	http.StatusInternalServerError: "Internal server error",
	http.StatusBadGateway:          "Bad gateway",
	http.StatusServiceUnavailable:  "Service unavailable",
	http.StatusGatewayTimeout:      "Too many entity mutations, try again later",
}

// ErrorBody is the body the simulator answers status with; it is also what injected faults
// without a body of their own get.
func ErrorBody(status int) []byte {
	b, _ := json.Marshal(httpProblem(status, defaultDetails[status]))
	return b
}

func writeProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func validationProblem(errs []ValidationError) Problem {
	p := httpProblem(http.StatusBadRequest, "Request validation failed")
	p.Title = "Bad Request"
	p.ValidationErrors = errs
	return p
}

// oauthProblem is an error of /oauth2/access_token. amoCRM runs league/oauth2-server (the hint
// texts are its own) but answers invalid_request with 401, as the revoked-token body shows.
func oauthProblem(hint string) Problem {
	return Problem{
		Hint:   hint,
		Title:  "Некорректный запрос",
		Type:   oauthProblemType,
		Status: http.StatusUnauthorized,
		Detail: "В запросе отсутствует ряд параметров или параметры невалидны",
	}
}

// The OAuth errors a connector meets.
const (
	hintRevoked        = "Token has been revoked"
	hintExpired        = "Token has expired"
	hintUndecryptable  = "Cannot decrypt the refresh token"
	hintCodeExpired    = "Authorization code has expired"
	hintCodeRevoked    = "Authorization code has been revoked"
	hintCodeUnknown    = "Cannot decrypt the authorization code"
	hintRedirectURI    = "Invalid redirect URI"
	hintMissingRefresh = "Check the `refresh_token` parameter"
	hintMissingCode    = "Check the `code` parameter"
)

func invalidClient() Problem {
	return Problem{
		Title:  "Некорректный клиент",
		Type:   oauthProblemType,
		Status: http.StatusUnauthorized,
		Detail: "Авторизация клиента не прошла",
	}
}

func unsupportedGrant() Problem {
	return Problem{
		Hint:   "Check that all required parameters have been provided",
		Title:  "Неподдерживаемый тип авторизации",
		Type:   oauthProblemType,
		Status: http.StatusBadRequest,
		Detail: "Тип авторизации не поддерживается сервером",
	}
}
