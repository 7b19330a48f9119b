package widget

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/sirupsen/logrus"

	"github.com/ringbridge/ringbridge/internal/command"
	"github.com/ringbridge/ringbridge/internal/phone"
)

// Originator sends the originate command to ami-gateway and waits for its reply.
type Originator interface {
	Originate(ctx context.Context, o command.Originate) (command.OriginateReply, error)
}

// Request is the widget's click-to-call body.
type Request struct {
	Phone  string `json:"phone"`
	UserID int    `json:"user_id"`
	// RequestID, when the widget sends one, tells two clicks apart (otherwise the token's jti and
	// the number do: a double click with the same token rings once).
	RequestID string `json:"request_id"`
}

// Answer is the endpoint's JSON answer.
type Answer struct {
	Result string `json:"result"`            // answered, no_answer, busy, failed, duplicate, or error
	CallID string `json:"call_id,omitempty"` // the call's id in the call events
	Error  string `json:"error,omitempty"`
}

// ParseRequest reads a click-to-call body, naming the field that is wrong.
func ParseRequest(body []byte, country string) (Request, error) {
	var r Request
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("the body is not the widget's JSON {\"phone\": \"...\", \"user_id\": N}: %w", err)
	}
	if dec.More() {
		return r, errors.New("the body holds more than one JSON object")
	}
	raw := strings.TrimSpace(r.Phone)
	if raw == "" {
		return r, errors.New("phone is empty: send the number to call")
	}
	for _, c := range raw {
		if !strings.ContainsRune("0123456789+-() .", c) {
			return r, fmt.Errorf("phone %q holds %q: send digits, optionally with + and - ( ) spaces", clip(raw), c)
		}
	}
	r.Phone = phone.Normalize(country, raw)
	if d := strings.TrimPrefix(r.Phone, "+"); len(d) < 2 || len(d) > 20 {
		return r, fmt.Errorf("phone %q is not a phone number", clip(raw))
	}
	if r.UserID < 0 {
		return r, fmt.Errorf("user_id %d is not an amoCRM user id", r.UserID)
	}
	if len(r.RequestID) > 64 {
		return r, errors.New("request_id is longer than 64 characters")
	}
	return r, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Handler is the click-to-call endpoint.
type Handler struct {
	verify      *Verifier
	orig        Originator
	extensionOf func(userID int) string
	country     string
	ringTimeout time.Duration
	log         logrus.FieldLogger
}

// NewHandler returns the endpoint: tokens checked by v, extensions from extensionOf (the config's
// users map), numbers normalized for country, the employee's phone ringing for ringTimeout.
func NewHandler(v *Verifier, orig Originator, extensionOf func(int) string, country string, ringTimeout time.Duration, log logrus.FieldLogger) *Handler {
	return &Handler{verify: v, orig: orig, extensionOf: extensionOf, country: country, ringTimeout: ringTimeout, log: log}
}

// ClickToCall serves POST click-to-call.
func (h *Handler) ClickToCall(c *gin.Context) {
	log := h.log.WithField("endpoint", "click-to-call")
	token := c.GetHeader("X-Auth-Token")
	if token == "" {
		token = strings.TrimPrefix(c.GetHeader("Authorization"), "Bearer ")
	}
	claims, err := h.verify.Verify(c.Request.Context(), token)
	if err != nil {
		status := http.StatusUnauthorized
		switch {
		case errors.Is(err, ErrAccount), errors.Is(err, ErrAudience):
			status = http.StatusForbidden
		case !errors.Is(err, ErrNoToken) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignature) && !errors.Is(err, ErrExpired):
			status = http.StatusServiceUnavailable // the account's id could not be read
		}
		log.WithError(err).WithField("remote", c.ClientIP()).Warn("click-to-call refused")
		c.JSON(status, Answer{Result: "error", Error: err.Error()})
		return
	}
	log = log.WithField("amo_user_id", claims.UserID)
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, 4097))
	if err != nil || len(body) > 4096 {
		c.JSON(http.StatusBadRequest, Answer{Result: "error", Error: "the body is missing or longer than 4 KiB"})
		return
	}
	req, err := ParseRequest(body, h.country)
	if err != nil {
		c.JSON(http.StatusBadRequest, Answer{Result: "error", Error: err.Error()})
		return
	}
	if req.UserID != 0 && req.UserID != claims.UserID {
		c.JSON(http.StatusForbidden, Answer{Result: "error", Error: fmt.Sprintf("user_id %d is not the token's user %d", req.UserID, claims.UserID)})
		return
	}
	ext := h.extensionOf(claims.UserID)
	if ext == "" {
		c.JSON(http.StatusForbidden, Answer{Result: "error", Error: fmt.Sprintf("amoCRM user %d has no extension in ringbridge: add it to amo.users (admin → amoCRM → employees)", claims.UserID)})
		return
	}
	sum := sha256.Sum256([]byte(claims.ID + "\n" + req.Phone + "\n" + req.RequestID))
	o := command.Originate{
		RequestID:      "amo:" + hex.EncodeToString(sum[:12]),
		Extension:      ext,
		Number:         req.Phone,
		TimeoutSeconds: int(h.ringTimeout / time.Second),
	}
	if err := o.Validate(); err != nil {
		c.JSON(http.StatusBadRequest, Answer{Result: "error", Error: err.Error()})
		return
	}
	// The gateway answers once the employee's phone answered or gave up ringing.
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.ringTimeout+15*time.Second)
	defer cancel()
	rep, err := h.orig.Originate(ctx, o)
	if err != nil {
		log.WithError(err).Warn("click-to-call: no answer from ami-gateway")
		status := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		c.JSON(status, Answer{Result: "error", Error: "the PBX gateway did not answer: " + err.Error()})
		return
	}
	log.WithFields(logrus.Fields{"extension": ext, "result": rep.Result, "call_id": rep.CallID}).Info("click-to-call")
	status := http.StatusOK
	switch rep.Result {
	case command.ResultRejected:
		status = http.StatusBadRequest
	case command.ResultDuplicate:
		status = http.StatusConflict
	case command.ResultFailed:
		status = http.StatusBadGateway
	}
	c.JSON(status, Answer{Result: string(rep.Result), CallID: rep.CallID, Error: rep.Error})
}
