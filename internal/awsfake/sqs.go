package awsfake

import (
	"crypto/md5"
	"encoding/hex"
	"time"
)

// SQS over its JSON protocol (awsJson1_0, X-Amz-Target AmazonSQS.*), the
// two calls of the change events consumer (internal/events): ReceiveMessage
// with long polling and visibility timeouts, and DeleteMessageBatch. Tests
// put messages in with SendMessage, as EventBridge would.

// DefaultVisibility is how long a received message stays hidden, as SQS's
// default VisibilityTimeout.
const DefaultVisibility = 30 * time.Second

type sqsState struct {
	queues     map[string]*sqsQueue // by queue URL
	arrived    chan struct{}        // closed and replaced when a message is sent
	visibility time.Duration
}

type sqsQueue struct {
	msgs []*sqsMessage // in send order; deleted ones removed
}

type sqsMessage struct {
	id, body, receipt string
	hiddenUntil       time.Time
}

// sqsLocked returns the SQS state, made on first use. Callers hold mu.
func (f *Fake) sqsLocked() *sqsState {
	if f.sqs.queues == nil {
		f.sqs = sqsState{queues: map[string]*sqsQueue{}, arrived: make(chan struct{}), visibility: DefaultVisibility}
	}
	return &f.sqs
}

// CreateQueue makes an empty queue and returns its URL,
// http://127.0.0.1:PORT/111122223333/NAME.
func (f *Fake) CreateQueue(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.URL + "/" + Account + "/" + name
	f.sqsLocked().queues[u] = &sqsQueue{}
	return u
}

// SendMessage puts body on the queue and returns its message id. It wakes
// the receives held by long polling.
func (f *Fake) SendMessage(queueURL, body string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sqsLocked()
	q := s.queues[queueURL]
	if q == nil {
		panic("awsfake: SendMessage to a queue never created: " + queueURL)
	}
	m := &sqsMessage{id: newUUID(), body: body}
	q.msgs = append(q.msgs, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
	return m.id
}

// QueueLength counts the messages not deleted from the queue, visible or
// not.
func (f *Fake) QueueLength(queueURL string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if q := f.sqsLocked().queues[queueURL]; q != nil {
		return len(q.msgs)
	}
	return 0
}

// SetVisibility sets how long a received message stays hidden before it is
// received again (DefaultVisibility).
func (f *Fake) SetVisibility(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sqsLocked().visibility = d
}

func sqsError(code, msg string) *APIError {
	return &APIError{Status: 400, Code: "com.amazonaws.sqs#" + code, Message: msg}
}

// queue returns the queue at u or QueueDoesNotExist. Callers hold mu.
func (f *Fake) queue(u, op string) (*sqsQueue, *APIError) {
	if f.denied(op, u) {
		return nil, accessDenied("sqs:"+op, u)
	}
	q := f.sqsLocked().queues[u]
	if q == nil {
		return nil, sqsError("QueueDoesNotExist", "The specified queue does not exist.")
	}
	return q, nil
}

type sqsMessageOut struct {
	MessageId     string
	ReceiptHandle string
	MD5OfBody     string
	Body          string
}

// receiveMessage holds the request, as long polling does, until a message
// is visible, WaitTimeSeconds pass or the fake closes.
func (f *Fake) receiveMessage(_ string, body []byte) (any, *APIError) {
	var in struct {
		QueueUrl            string
		MaxNumberOfMessages *int
		WaitTimeSeconds     *int
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	max, wait := 1, 0
	if in.MaxNumberOfMessages != nil {
		max = *in.MaxNumberOfMessages
	}
	if in.WaitTimeSeconds != nil {
		wait = *in.WaitTimeSeconds
	}
	if max < 1 || max > 10 {
		return nil, sqsError("InvalidParameterValue", "Value for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.")
	}
	if wait < 0 || wait > 20 {
		return nil, sqsError("InvalidParameterValue", "Value for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.")
	}
	deadline := time.NewTimer(time.Duration(wait) * time.Second)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		q, e := f.queue(in.QueueUrl, "ReceiveMessage")
		if e != nil {
			f.mu.Unlock()
			return nil, e
		}
		s := f.sqsLocked()
		now := time.Now()
		out := []sqsMessageOut{}
		var next time.Time // when the first hidden message shows again
		for _, m := range q.msgs {
			if len(out) == max {
				break
			}
			if now.Before(m.hiddenUntil) {
				if next.IsZero() || m.hiddenUntil.Before(next) {
					next = m.hiddenUntil
				}
				continue
			}
			m.receipt = newUUID()
			m.hiddenUntil = now.Add(s.visibility)
			out = append(out, sqsMessageOut{MessageId: m.id, ReceiptHandle: m.receipt, MD5OfBody: md5Hex(m.body), Body: m.body})
		}
		arrived := s.arrived
		f.mu.Unlock()
		if len(out) > 0 {
			return map[string]any{"Messages": out}, nil
		}
		var shows <-chan time.Time
		if !next.IsZero() {
			t := time.NewTimer(time.Until(next))
			defer t.Stop()
			shows = t.C
		}
		select {
		case <-arrived:
		case <-shows:
		case <-deadline.C:
			return map[string]any{}, nil
		case <-f.closed:
			return map[string]any{}, nil
		}
	}
}

func (f *Fake) deleteMessageBatch(_ string, body []byte) (any, *APIError) {
	var in struct {
		QueueUrl string
		Entries  []struct{ Id, ReceiptHandle string }
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	q, e := f.queue(in.QueueUrl, "DeleteMessageBatch")
	if e != nil {
		return nil, e
	}
	switch {
	case len(in.Entries) == 0:
		return nil, sqsError("EmptyBatchRequest", "There should be at least one DeleteMessageBatchRequestEntry in the request.")
	case len(in.Entries) > 10:
		return nil, sqsError("TooManyEntriesInBatchRequest", "Maximum number of entries per request are 10.")
	}
	type failed struct {
		Id          string
		SenderFault bool
		Code        string
		Message     string
	}
	type ok struct{ Id string }
	out := struct {
		Successful []ok
		Failed     []failed
	}{Successful: []ok{}, Failed: []failed{}}
	seen := map[string]bool{}
	for _, en := range in.Entries {
		if seen[en.Id] {
			return nil, sqsError("BatchEntryIdsNotDistinct", "Id "+en.Id+" repeated.")
		}
		seen[en.Id] = true
		i := -1
		for j, m := range q.msgs {
			if m.receipt != "" && m.receipt == en.ReceiptHandle {
				i = j
				break
			}
		}
		if i < 0 {
			out.Failed = append(out.Failed, failed{en.Id, true, "ReceiptHandleIsInvalid", "The input receipt handle is invalid."})
			continue
		}
		q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
		out.Successful = append(out.Successful, ok{en.Id})
	}
	return out, nil
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
