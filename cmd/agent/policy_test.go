package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestPolicyFeed runs `agent policy` for a change feed watcher: the flags
// reach internal/policy (the bytes are its golden file), and a feed asked
// for a command that does not serve it is a usage error.
func TestPolicyFeed(t *testing.T) {
	env := func(string) string { return "" }
	for _, tc := range []struct {
		name   string
		args   []string
		golden string
	}{
		{"everything", []string{"--feed"}, "feed-everything"},
		{"prefixes imply --feed", []string{"--feed-prefix", "/prod/", "--feed-prefix", "shared-", "--feed-prefix", "/prod/", "--command", "watch"}, "feed-prefixes"},
		// As agent watch --feed-regions reads them.
		{"regions imply --feed", []string{"--feed-regions", "eu-west-1, us-east-1", "--feed-prefix", "/prod/"}, "feed-regions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			region := "us-east-1"
			if tc.golden == "feed-everything" {
				region = "eu-west-1"
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"policy", "--region", region, "--account", "111122223333"}, tc.args...)
			if err := run(context.Background(), args, env, &stdout, &stderr); err != nil {
				t.Fatalf("agent %q: %v\n%s", args, err, stderr.Bytes())
			}
			want, err := os.ReadFile("../../internal/policy/testdata/" + tc.golden + ".json")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(stdout.Bytes(), want) {
				t.Errorf("agent %q printed\n%s\nwant\n%s", args, stdout.Bytes(), want)
			}
			if !strings.Contains(stderr.String(), "note: a reference the feed's role cannot read") {
				t.Errorf("no note about references outside the policy on stderr:\n%s", stderr.Bytes())
			}
		})
	}

	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"policy", "--feed-regions", "eu-west-1,eu-west-1", "--region", "us-east-1"}, env, &stdout, &stderr)
	if exitCode(err) != exitUsage || err.Error() != "policy: --feed-regions: eu-west-1 is named twice" || stdout.Len() != 0 {
		t.Errorf("--feed-regions twice: exit %d, %v, printed %q", exitCode(err), err, stdout.Bytes())
	}
	stdout.Reset()
	err = run(context.Background(), []string{"policy", "--feed", "--command", "run", "--region", "us-east-1"}, env, &stdout, &stderr)
	if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "the change feed is served by agent watch, but the commands (run) do not include watch") {
		t.Errorf("--feed --command run: exit %d, %v", exitCode(err), err)
	}
	if stdout.Len() != 0 {
		t.Errorf("printed a policy on a usage error:\n%s", stdout.Bytes())
	}
}
