package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// The two SQS calls the consumer makes, over SQS's JSON protocol
// (awsJson1_0) and signed with the SDK's SigV4 signer, instead of the SDK's
// SQS client: that client costs 340 KB of binary, and the image has a
// 16 MB budget (docs/BENCHMARKS.md, "Binary size with the SQS client").

// Receive parameters: long polling, as many messages as SQS gives at once.
const (
	WaitTimeSeconds     = 20
	MaxNumberOfMessages = 10
)

// Deadlines of one call: a receive may be held WaitTimeSeconds by SQS.
const (
	receiveTimeout = (WaitTimeSeconds + 10) * time.Second
	deleteTimeout  = 10 * time.Second
	maxResponse    = 16 << 20 // ten messages of up to 1 MiB, JSON-escaped
)

const jsonContentType = "application/x-amz-json-1.0"

// Message is one received SQS message.
type Message struct {
	ID            string // MessageId: safe to log, unlike Body
	ReceiptHandle string
	Body          string
}

// SQS is a client of one queue. Make it with NewSQS.
type SQS struct {
	QueueURL    string
	Endpoint    string // where requests are sent: https://sqs.REGION.amazonaws.com
	Region      string // what they are signed for
	Credentials aws.CredentialsProvider
	HTTP        aws.HTTPClient
	Observe     fetch.APIObserver // told of every call, as the SDK clients' are; may be nil
	Now         func() time.Time
}

// NewSQS returns a client of queueURL with cfg's credentials, HTTP client
// and region. endpoint, when not "", replaces the queue URL's own host (an
// AWS_ENDPOINT_URL_SQS or AWS_ENDPOINT_URL). The region is the queue URL's
// (sqs.REGION.amazonaws.com), else cfg's.
func NewSQS(queueURL, endpoint string, cfg aws.Config, observe fetch.APIObserver) (*SQS, error) {
	u, err := url.Parse(queueURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || len(strings.Split(strings.Trim(u.Path, "/"), "/")) != 2 {
		return nil, fmt.Errorf("events queue %q is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)", queueURL)
	}
	if endpoint == "" {
		endpoint = u.Scheme + "://" + u.Host
	}
	region := regionOfHost(u.Hostname())
	if region == "" {
		region = cfg.Region
	}
	if region == "" {
		return nil, fmt.Errorf("events queue %q: no region in its host name, and none configured (AWS_REGION)", queueURL)
	}
	if cfg.Credentials == nil {
		return nil, errors.New("events queue: no AWS credentials configured")
	}
	c := &SQS{QueueURL: queueURL, Endpoint: strings.TrimRight(endpoint, "/") + "/", Region: region,
		Credentials: cfg.Credentials, HTTP: cfg.HTTPClient, Observe: observe, Now: time.Now}
	if c.HTTP == nil {
		c.HTTP = http.DefaultClient
	}
	return c, nil
}

// regionOfHost reads the region from an SQS host name:
// sqs.REGION.amazonaws.com[.cn], REGION.queue.amazonaws.com, or a VPC
// endpoint's vpce-ID.sqs.REGION.vpce.amazonaws.com. "" when it is none of
// these.
func regionOfHost(host string) string {
	labels := strings.Split(host, ".")
	for i := 0; i+1 < len(labels); i++ {
		var r string
		switch {
		case labels[i] == "sqs":
			r = labels[i+1]
		case labels[i+1] == "queue" && i == 0:
			r = labels[i]
		default:
			continue
		}
		if fetch.ValidRegion(r) {
			return r
		}
	}
	return ""
}

// APIError is an error answer from SQS.
type APIError struct {
	Op      string // "ReceiveMessage"
	Status  int
	Code    string // "QueueDoesNotExist", without the "com.amazonaws.sqs#" namespace
	Message string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("sqs %s: HTTP %d", e.Op, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// ErrorCode is the AWS error code.
func (e *APIError) ErrorCode() string { return e.Code }

// Receive long-polls the queue for up to MaxNumberOfMessages messages.
func (c *SQS) Receive(ctx context.Context) ([]Message, error) {
	ctx, cancel := context.WithTimeout(ctx, receiveTimeout)
	defer cancel()
	in := struct {
		QueueUrl            string
		MaxNumberOfMessages int
		WaitTimeSeconds     int
	}{c.QueueURL, MaxNumberOfMessages, WaitTimeSeconds}
	var out struct {
		Messages []struct {
			MessageId     string
			ReceiptHandle string
			Body          string
		}
	}
	if err := c.call(ctx, "ReceiveMessage", in, &out); err != nil {
		return nil, err
	}
	msgs := make([]Message, 0, len(out.Messages))
	for _, m := range out.Messages {
		msgs = append(msgs, Message{ID: m.MessageId, ReceiptHandle: m.ReceiptHandle, Body: m.Body})
	}
	return msgs, nil
}

// BatchError is a DeleteMessageBatch whose answer lists failed entries.
type BatchError struct {
	Failed int
	Code   string // the first failed entry's
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("sqs DeleteMessageBatch: %d entries failed (%s)", e.Failed, e.Code)
}

// ErrorCode is the first failed entry's code.
func (e *BatchError) ErrorCode() string { return e.Code }

// Delete deletes msgs (at most MaxNumberOfMessages, one receive's worth)
// with one DeleteMessageBatch.
func (c *SQS) Delete(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	defer cancel()
	type entry struct{ Id, ReceiptHandle string }
	in := struct {
		QueueUrl string
		Entries  []entry
	}{QueueUrl: c.QueueURL}
	for i, m := range msgs {
		in.Entries = append(in.Entries, entry{strconv.Itoa(i), m.ReceiptHandle})
	}
	var out struct {
		Failed []struct{ Code string }
	}
	if err := c.call(ctx, "DeleteMessageBatch", in, &out); err != nil {
		return err
	}
	if len(out.Failed) > 0 {
		return &BatchError{Failed: len(out.Failed), Code: out.Failed[0].Code}
	}
	return nil
}

// call makes one signed awsJson1_0 request.
func (c *SQS) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("sqs %s: %w", op, err)
	}
	creds, err := c.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("sqs %s: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sqs %s: %w", op, err)
	}
	req.Header.Set("Content-Type", jsonContentType)
	req.Header.Set("X-Amz-Target", "AmazonSQS."+op)
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "sqs", c.Region, c.Now().UTC()); err != nil {
		return fmt.Errorf("sqs %s: signing: %w", op, err)
	}
	start := time.Now()
	err = c.roundTrip(req, op, out)
	if c.Observe != nil {
		c.Observe("SQS", op, outcome(err), time.Since(start))
	}
	return err
}

func (c *SQS) roundTrip(req *http.Request, op string, out any) error {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("sqs %s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("sqs %s: reading the answer: %w", op, err)
	}
	if len(data) > maxResponse {
		return fmt.Errorf("sqs %s: answer over %d bytes", op, maxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		return apiError(op, resp, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &APIError{Op: op, Status: resp.StatusCode, Code: "SerializationException", Message: "answer is not the expected JSON"}
	}
	return nil
}

// apiError reads an awsJson error answer: the code from "__type" (or the
// x-amzn-query-error header SQS adds), its text from "message".
func apiError(op string, resp *http.Response, data []byte) *APIError {
	var e struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		MessageC string `json:"Message"`
	}
	_ = json.Unmarshal(data, &e)
	code := e.Type
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if code == "" {
		code, _, _ = strings.Cut(resp.Header.Get("X-Amzn-Query-Error"), ";")
	}
	msg := e.Message
	if msg == "" {
		msg = e.MessageC
	}
	if len(msg) > 256 {
		msg = msg[:256] + "…"
	}
	return &APIError{Op: op, Status: resp.StatusCode, Code: code, Message: msg}
}

// outcome classifies a call's error as fetch's observer does for the SDK
// clients.
func outcome(err error) string {
	var ae *APIError
	switch {
	case err == nil:
		return fetch.OutcomeSuccess
	case !errors.As(err, &ae):
		return fetch.OutcomeNetworkError
	case ae.Status == http.StatusTooManyRequests || strings.Contains(ae.Code, "Throttl") || ae.Code == "RequestThrottled":
		return fetch.OutcomeThrottled
	case ae.Status >= 500:
		return fetch.OutcomeServerError
	}
	return fetch.OutcomeClientError
}
