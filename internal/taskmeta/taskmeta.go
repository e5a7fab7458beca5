// Package taskmeta reads what a task knows about itself from the ECS task
// metadata endpoint v4, without an AWS API call.
package taskmeta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// EnvURI is the variable ECS sets in every container (platform 1.4.0+, agent 1.39.0+).
const EnvURI = "ECS_CONTAINER_METADATA_URI_V4"

// ErrNotInTask means the metadata endpoint variable is not set.
var ErrNotInTask = errors.New(EnvURI + " is not set (not running in an ECS task)")

// Task is the part of the task metadata response we use.
type Task struct {
	Cluster     string `json:"Cluster"`
	TaskARN     string `json:"TaskARN"`
	ServiceName string `json:"ServiceName"`
}

// Region returns the region of the task ARN ("arn:aws:ecs:REGION:ACCOUNT:task/...").
func (t Task) Region() (string, error) {
	parts := strings.SplitN(t.TaskARN, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" || parts[3] == "" {
		return "", fmt.Errorf("task metadata: TaskARN %q is not an ARN", t.TaskARN)
	}
	return parts[3], nil
}

// Timeout bounds a metadata read, whatever client the caller passes: the
// endpoint is local and answers in milliseconds, and a hung read must not
// hold start-up or a redeploy until TCP gives up.
const Timeout = 5 * time.Second

// Get fetches the task metadata from $ECS_CONTAINER_METADATA_URI_V4/task,
// giving up after Timeout.
func Get(ctx context.Context, getenv func(string) string, client *http.Client) (Task, error) {
	base := getenv(EnvURI)
	if base == "" {
		return Task{}, ErrNotInTask
	}
	u := strings.TrimSuffix(base, "/") + "/task"
	noAnswer := fmt.Errorf("task metadata: no answer from %s within %s", u, Timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, Timeout, noAnswer)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Task{}, fmt.Errorf("task metadata: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if context.Cause(ctx) == noAnswer {
			return Task{}, noAnswer
		}
		return Task{}, fmt.Errorf("task metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Task{}, fmt.Errorf("task metadata: %s answered %s", req.URL, resp.Status)
	}
	var t Task
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&t); err != nil {
		if context.Cause(ctx) == noAnswer {
			return Task{}, noAnswer
		}
		return Task{}, fmt.Errorf("task metadata: decoding %s: %w", req.URL, err)
	}
	return t, nil
}
