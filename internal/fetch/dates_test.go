package fetch_test

import (
	"context"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/awsfake"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// TestChangeDatesFromAWS: Fetch dates each value by AWS (a parameter's
// LastModifiedDate, a secret version's CreatedDate) and Versions dates a
// secret by DescribeSecret's LastChangedDate: what a redeploy compares with
// a deployment's createdAt, so every actor dates one change alike.
func TestChangeDatesFromAWS(t *testing.T) {
	fake := awsfake.New()
	t.Cleanup(fake.Close)
	fake.SetenvIsolated(t.Setenv, region, t.TempDir())
	cfg, err := fetch.LoadAWSConfig(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fetch.Fetcher{Clients: fetch.NewClients(cfg), Region: region}
	before := time.Now().Truncate(time.Millisecond) // AWS dates have millisecond precision
	fake.PutParameter(region, "/prod/db", "v", true)
	arn := fake.PutSecretString(region, "api", "s")
	after := time.Now()
	var reqs []fetch.Request
	for name, vf := range map[string]string{"DB": "/prod/db", "API": arn} {
		ref, err := fetch.ParseRef(vf)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, fetch.Request{Name: name, Ref: ref})
	}
	out, err := f.Fetch(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	versions, err := f.Versions(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"DB", "API"} {
		for what, at := range map[string]time.Time{"Fetch": out.Values[name].Modified, "Versions": versions[name].Created} {
			if at.Before(before) || at.After(after) {
				t.Errorf("%s %s dated %s, want within [%s, %s]", what, name, at.Format(time.RFC3339Nano), before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano))
			}
		}
	}
}
