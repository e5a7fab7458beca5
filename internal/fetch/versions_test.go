package fetch_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

func TestVersionsAgainstFake(t *testing.T) {
	fake, f, _ := setup(t)
	ctx := context.Background()
	var reqs []fetch.Request
	add := func(name, ref string, optional bool) {
		r, err := fetch.ParseRef(ref)
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, fetch.Request{Name: name, Ref: r, Optional: optional})
	}
	for i := range 12 {
		fake.PutParameter(region, fmt.Sprintf("/p%02d", i), "v", i%2 == 0)
		add(fmt.Sprintf("P%02d", i), fmt.Sprintf("/p%02d", i), false)
	}
	fake.PutParameter(region, "/p00", "v2", true)
	db := fake.PutSecretString(region, "db", `{"a":"b"}`)
	fake.PutSecretString(region, "token", "t")
	add("DB", db, false)
	add("DB_A", db+":a::", false)
	add("TOKEN", "/aws/reference/secretsmanager/token", false)
	add("PINNED", "/p01:1", false)
	add("PINNED_SM", db+":::"+fake.SecretVersionID(region, "db", "AWSCURRENT"), false)
	add("OPTIONAL", "/missing", true)
	add("MISSING", "/missing", false)
	before := time.Now()

	got, err := f.Versions(ctx, reqs)
	var fe *fetch.Error
	if !errors.As(err, &fe) || fe.Name != "MISSING" || fe.Code != "ParameterNotFound" {
		t.Fatalf("error = %v, want MISSING ParameterNotFound only", err)
	}
	if v := got["P00"]; v.ID != "2" || v.Created.IsZero() || v.Created.After(before) {
		t.Errorf("P00 = %+v, want version 2 with its LastModifiedDate", v)
	}
	dbID := fake.SecretVersionID(region, "db", "AWSCURRENT")
	// A secret is dated by DescribeSecret's LastChangedDate.
	if got["DB"].ID != dbID || got["DB_A"].ID != dbID || got["DB"].Created.IsZero() || got["DB"].Created.After(before) || got["DB_A"].Created != got["DB"].Created {
		t.Errorf("DB = %+v, DB_A = %+v, want %s dated by LastChangedDate", got["DB"], got["DB_A"], dbID)
	}
	if got["TOKEN"].ID != fake.SecretVersionID(region, "token", "AWSCURRENT") || got["TOKEN"].Created.IsZero() {
		t.Errorf("TOKEN = %+v", got["TOKEN"])
	}
	if got["PINNED"].ID != "1" || got["PINNED_SM"].ID != dbID {
		t.Errorf("pinned = %+v, %+v", got["PINNED"], got["PINNED_SM"])
	}
	if _, ok := got["OPTIONAL"]; ok {
		t.Error("a missing optional request is in the map")
	}
	if _, ok := got["MISSING"]; ok {
		t.Error("a failed request is in the map")
	}
	// 13 names without decryption (2 calls), 2 secrets described; no value read.
	want := []string{"DescribeSecret", "DescribeSecret", "GetParameters 10 decrypt=false", "GetParameters 3 decrypt=false"}
	if c := calls(fake); !slices.Equal(c, want) {
		t.Errorf("calls = %q, want %q", c, want)
	}
}
