package taskdefs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/config"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/feed"
	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/tdcheck"
)

// TestFeedToken: every container at either end of the feed (a watcher that
// serves it, an agent that asks it) gets AGENT_FEED_TOKEN from ECS's own
// injection (secrets), one secret for all of them, never in its
// environment or command; and the execution role's policy,
// iam/execution-role-feed-token.json, lets ECS read exactly that secret.
func TestFeedToken(t *testing.T) {
	files, _ := filepath.Glob("*.json")
	tokens := map[string][]string{} // valueFrom → the containers given it
	ends := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		td := tdcheck.DecodeStrict(t, []byte(placeholders.Replace(string(raw))))
		for _, c := range td.ContainerDefinitions {
			where := file + " " + deref(c.Name)
			for _, e := range c.Environment {
				if n := deref(e.Name); n == feed.TokenEnv || n == feed.TokenPreviousEnv {
					t.Errorf("%s: %s in environment: plaintext in the task definition; give it in secrets", where, n)
				}
			}
			if !feedEnd(t, c) {
				continue
			}
			ends++
			i := slices.IndexFunc(c.Secrets, func(s types.Secret) bool { return deref(s.Name) == feed.TokenEnv })
			if i < 0 {
				t.Errorf("%s: an end of the change feed without %s in its secrets", where, feed.TokenEnv)
				continue
			}
			vf := deref(c.Secrets[i].ValueFrom)
			tokens[vf] = append(tokens[vf], where)
		}
	}
	if ends < 3 {
		t.Fatalf("%d ends of the feed among the examples, want a watcher and agents", ends)
	}
	if len(tokens) != 1 {
		t.Fatalf("the feed's ends take their token from %d secrets, want one: %v", len(tokens), tokens)
	}
	raw, err := os.ReadFile("../iam/execution-role-feed-token.json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Statement []struct {
			Effect   string
			Action   any
			Resource any
		}
	}
	if err := json.Unmarshal([]byte(placeholders.Replace(string(raw))), &p); err != nil {
		t.Fatal(err)
	}
	for vf := range tokens {
		granted := false
		for _, s := range p.Statement {
			if s.Effect == "Allow" && s.Action == "secretsmanager:GetSecretValue" && s.Resource == vf {
				granted = true
			}
		}
		if !granted {
			t.Errorf("iam/execution-role-feed-token.json does not allow secretsmanager:GetSecretValue on %s", vf)
		}
	}
}

// feedEnd reports whether c serves the change feed (agent watch with
// feedAddr) or asks it (agent run or exec with refresh.feed).
func feedEnd(t *testing.T, c types.ContainerDefinition) bool {
	t.Helper()
	var argv []string
	switch {
	case isAgent(c) && len(c.Command) > 0 && c.Command[0] == "watch":
		return slices.Contains(c.Command, "--feed-addr") || watchConfig(t, c).FeedAddr != ""
	case isAgent(c) && len(c.Command) > 0 && c.Command[0] == "run":
		argv = c.Command[1:]
	case isExecWrapped(c):
		argv = c.EntryPoint[2:]
	default:
		return false
	}
	var flags config.Flags
	if i := slices.Index(argv, "--feed"); i >= 0 && i+1 < len(argv) {
		flags.Feed = argv[i+1]
	}
	s, err := config.Load(flags, containerEnv(c))
	return err == nil && s.Feed != ""
}
