package redeploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// LockPrefix starts every lock name; IAM grants the lock actions on
// parameters under it only.
const LockPrefix = "/ecs-secrets-agent/locks/"

// maxPart keeps a name well under SSM's 1011 characters (which count the
// ARN before the name too): prefix + 3 parts + generation < 450.
const maxPart = 128

const (
	stateHeld = "held"
	stateDone = "done"
)

// lockValue is a lock parameter's value (JSON, a String parameter).
type lockValue struct {
	Owner    string    `json:"owner"`    // task ARN of the holder
	Acquired time.Time `json:"acquired"` // holder's clock, when it sent the create
	State    string    `json:"state"`    // held or done
	// Set when done:
	Result     string    `json:"result,omitempty"` // an Outcome: deployed, took-over, already-deployed
	Deployment string    `json:"deployment,omitempty"`
	Finished   time.Time `json:"finished,omitzero"`
}

// lock is a lock as read.
type lock struct {
	raw      string
	val      lockValue
	modified time.Time // SSM's LastModifiedDate: creation, until marked done
}

// lockDir is LockPrefix/<cluster>/<service>/ with ARNs shortened to names.
func lockDir(cluster, service string) string {
	return LockPrefix + part(shortName(cluster)) + "/" + part(shortName(service)) + "/"
}

// shortName turns a cluster or service ARN into its name (the last path
// element), so a name and an ARN of one service share their locks.
func shortName(s string) string {
	if strings.HasPrefix(s, "arn:") {
		if i := strings.LastIndexByte(s, '/'); i >= 0 {
			return s[i+1:]
		}
	}
	return s
}

// part returns s if it is a valid single level of an SSM name
// ([a-zA-Z0-9_.-], at most maxPart characters), else a hash of it.
func part(s string) string {
	ok := s != "" && s != "." && s != ".." && len(s) <= maxPart
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
	}
	if ok {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "h-" + hex.EncodeToString(sum[:16])
}

// read returns the lock called name, and whether it exists.
func (r *Redeployer) read(ctx context.Context, name string) (lock, bool, error) {
	out, err := r.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(false)})
	var nf *ssmtypes.ParameterNotFound
	if errors.As(err, &nf) {
		return lock{}, false, nil
	}
	if err != nil {
		return lock{}, false, fmt.Errorf("redeploy: GetParameter %s: %w", name, err)
	}
	if out.Parameter == nil {
		return lock{}, false, fmt.Errorf("redeploy: GetParameter %s: no parameter in the answer", name)
	}
	l := lock{raw: aws.ToString(out.Parameter.Value), modified: aws.ToTime(out.Parameter.LastModifiedDate)}
	if err := json.Unmarshal([]byte(l.raw), &l.val); err != nil || (l.val.State != stateHeld && l.val.State != stateDone) {
		// Not ours to interpret: treat it as held by nobody known, so it
		// goes stale and the next generation takes over.
		l.val = lockValue{State: stateHeld}
	}
	if l.modified.IsZero() {
		l.modified = l.val.Acquired
	}
	return l, true, nil
}

// create tries to take the lock called name. It reports whether this task
// won; if not, held is the lock as read after losing, or nil if the lock was
// gone again by then.
func (r *Redeployer) create(ctx context.Context, name string, start time.Time) (won bool, held *lock, err error) {
	value := encode(lockValue{Owner: r.task, Acquired: start.UTC(), State: stateHeld})
	_, err = r.ssm.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: ssmtypes.ParameterTypeString,
		Overwrite:   aws.Bool(false),
		Description: aws.String("ecs-secrets-agent redeploy lock"),
	})
	var exists *ssmtypes.ParameterAlreadyExists
	if err == nil {
		return true, nil, nil
	}
	if !errors.As(err, &exists) {
		return false, nil, fmt.Errorf("redeploy: PutParameter %s: %w", name, err)
	}
	l, found, err := r.read(ctx, name)
	if err != nil || !found {
		return false, nil, err
	}
	if l.raw == value {
		// Our own create, whose answer was lost and whose retry by the
		// SDK found it: we hold the lock.
		return true, nil, nil
	}
	return false, &l, nil
}

// markDone overwrites this task's own lock (nobody else writes it) with
// state done. If that fails, waiting tasks take over after the takeover
// delay and find the deployment, so the failure is only logged.
func (r *Redeployer) markDone(ctx context.Context, log *slog.Logger, changeID string, gen int, start time.Time, result, deployment string) {
	name := r.lockName(changeID, gen)
	value := encode(lockValue{Owner: r.task, Acquired: start.UTC(), State: stateDone,
		Result: result, Deployment: deployment, Finished: r.now().UTC()})
	_, err := r.ssm.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: ssmtypes.ParameterTypeString,
		Overwrite: aws.Bool(true),
	})
	if err != nil {
		log.Warn("cannot mark the lock done; waiting tasks will take over and find the deployment", "error", err.Error())
	}
}

func (r *Redeployer) delete(ctx context.Context, name string) error {
	_, err := r.ssm.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String(name)})
	var nf *ssmtypes.ParameterNotFound
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("redeploy: DeleteParameter %s: %w", name, err)
	}
	return nil
}

func encode(v lockValue) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // a struct of strings and times always encodes
	}
	return string(b)
}
