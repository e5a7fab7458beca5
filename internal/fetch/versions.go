package fetch

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Version is the version a request resolves to now, read without its value.
type Version struct {
	ID string // as Result.Version: a Parameter Store version number, or a Secrets Manager version id

	// Created dates the version by AWS's clock, where the polling call says
	// so at no extra cost: Parameter Store's LastModifiedDate; for Secrets
	// Manager (and /aws/reference/secretsmanager/ names) DescribeSecret's
	// LastChangedDate, which dates no version but moves when a stage moves,
	// so a stage moved back to an older version is dated by the move, not
	// by that version's creation (an unrelated change of the secret makes
	// the date later: the safe direction). Zero for pinned references.
	Created time.Time
}

// Versions reads the version each request resolves to now, by
// Request.Name, with Poll's calls and no decryption: ceil(P/10)
// GetParameters without decryption per region, and one DescribeSecret per
// distinct secret and region. A pinned request ("name:3", a version id)
// costs no call and reports its pinned version. Errors are joined *Error,
// one per request that could not be read; an optional request that is
// missing is left out without an error.
//
// It is Poll for a caller that keeps versions rather than values (the
// rotation watcher): the first call is the baseline, and a later ID that
// differs is a change.
func (f *Fetcher) Versions(ctx context.Context, reqs []Request) (map[string]Version, error) {
	out := make(map[string]Version, len(reqs))
	var check []Request
	for _, r := range reqs {
		switch {
		case r.Ref.Service == ParameterStore && pinned(r.Ref):
			out[r.Name] = Version{ID: r.Ref.Selector}
		case pinned(r.Ref):
			out[r.Name] = Version{ID: r.Ref.VersionID}
		default:
			check = append(check, r)
		}
	}
	c := f.newCall(check, false)
	c.run(ctx)
	var errs []error
	for _, r := range check {
		id, err := c.version(r)
		var e *Error
		switch {
		case err != nil && r.Optional && errors.As(err, &e) && e.Missing():
		case err != nil:
			errs = append(errs, err)
		default:
			v := Version{ID: id}
			if r.Ref.Service == ParameterStore && !r.Ref.ViaSecretsManager {
				if p, err := c.parameter(r); err == nil && p.LastModifiedDate != nil {
					v.Created = *p.LastModifiedDate
				}
			} else if k, _ := f.describeTarget(r.Ref); c.dres[k].out != nil {
				v.Created = aws.ToTime(c.dres[k].out.LastChangedDate)
			}
			out[r.Name] = v
		}
	}
	return out, errors.Join(errs...)
}
