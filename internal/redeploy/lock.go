package redeploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
// ARN before the name too): prefix + 2 parts + generation < 300.
const maxPart = 128

const (
	stateHeld = "held" // the owner is checking or deploying
	stateDone = "done" // the owner finished: deployed, or found a deployment
	stateFree = "free" // the owner gave up before UpdateService could have acted
)

// lockValue is a lock record's value (JSON, a String parameter).
type lockValue struct {
	Owner    string    `json:"owner"`    // task ARN (or watcher id) of the holder
	Acquired time.Time `json:"acquired"` // holder's clock, when it sent the create
	State    string    `json:"state"`
	// The service's newest deployment known to the writer, carried from
	// record to record, so that an actor whose change it covers needs no
	// DescribeServices.
	Deployment        string    `json:"deployment,omitempty"`
	DeploymentCreated time.Time `json:"deploymentCreated,omitzero"` // ECS's createdAt
}

// lock is one lock record as read.
type lock struct {
	gen      int
	name     string
	raw      string
	val      lockValue
	modified time.Time // SSM's LastModifiedDate: creation, until overwritten
}

// LockPath is the parameter path under which every actor (in-task agents
// and watchers) keeps the lock records of one service:
// LockPrefix<cluster>/<service>, with ARNs shortened to names.
func LockPath(cluster, service string) string {
	return LockPrefix + part(shortName(cluster)) + "/" + part(shortName(service))
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

func (r *Redeployer) genName(gen int) string { return r.path + "/" + strconv.Itoa(gen) }

// list reads every lock record of the service, oldest generation first,
// following NextToken (GetParametersByPath may answer a page short).
func (r *Redeployer) list(ctx context.Context) ([]lock, error) {
	var locks []lock
	in := &ssm.GetParametersByPathInput{Path: aws.String(r.path), Recursive: aws.Bool(false), WithDecryption: aws.Bool(false)}
	for pages := 0; ; pages++ {
		if pages == 100 {
			return nil, fmt.Errorf("redeploy: GetParametersByPath %s: more than 100 pages", r.path)
		}
		out, err := r.ssm.GetParametersByPath(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("redeploy: GetParametersByPath %s: %w", r.path, err)
		}
		for _, p := range out.Parameters {
			name := aws.ToString(p.Name)
			gen, err := strconv.Atoi(strings.TrimPrefix(name, r.path+"/"))
			if err != nil || gen < 1 {
				continue // not a lock record of ours
			}
			locks = append(locks, parse(gen, name, aws.ToString(p.Value), aws.ToTime(p.LastModifiedDate)))
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	slices.SortFunc(locks, func(a, b lock) int { return a.gen - b.gen })
	return locks, nil
}

func parse(gen int, name, raw string, modified time.Time) lock {
	l := lock{gen: gen, name: name, raw: raw, modified: modified}
	if err := json.Unmarshal([]byte(raw), &l.val); err != nil || (l.val.State != stateHeld && l.val.State != stateDone && l.val.State != stateFree) {
		// Not ours to interpret: held by nobody known, so it expires and
		// the next generation takes over.
		l.val = lockValue{State: stateHeld}
	}
	if l.modified.IsZero() {
		l.modified = l.val.Acquired
	}
	return l
}

// create tries to take generation gen with an atomic create
// (Overwrite=false): SSM creates a name at most once, so one actor wins.
func (r *Redeployer) create(ctx context.Context, gen int, v lockValue) (won bool, err error) {
	name := r.genName(gen)
	value := encode(v)
	_, err = r.ssm.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(value), Type: ssmtypes.ParameterTypeString,
		Overwrite:   aws.Bool(false),
		Description: aws.String("ecs-secrets-agent redeploy lock"),
	})
	if err == nil {
		return true, nil
	}
	var exists *ssmtypes.ParameterAlreadyExists
	if !errors.As(err, &exists) {
		return false, fmt.Errorf("redeploy: PutParameter %s: %w", name, err)
	}
	// Our own create, whose answer was lost and whose retry by the SDK
	// found it, reads back with our exact value (owner and nanosecond
	// acquisition time make it unique).
	out, err := r.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(false)})
	var nf *ssmtypes.ParameterNotFound
	switch {
	case errors.As(err, &nf):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("redeploy: GetParameter %s: %w", name, err)
	}
	return out.Parameter != nil && aws.ToString(out.Parameter.Value) == value, nil
}

// write overwrites this actor's own generation (nobody else writes it).
func (r *Redeployer) write(ctx context.Context, gen int, v lockValue) error {
	name := r.genName(gen)
	_, err := r.ssm.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(name), Value: aws.String(encode(v)), Type: ssmtypes.ParameterTypeString,
		Overwrite: aws.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("redeploy: PutParameter %s: %w", name, err)
	}
	return nil
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
