package lint

import (
	"strings"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/taskdef"
)

// TestWatchConfig: a watcher's AGENT_CONFIG is agent watch's configuration
// (services, feedAddr, feedRegions, eventsQueue), not an agent's: read it as watch does.
func TestWatchConfig(t *testing.T) {
	for _, tc := range []struct {
		name, config string
		want         []string
	}{
		{"feed", `{"feedAddr":":8081","interval":"1m","eventsQueue":"https://sqs.us-east-1.amazonaws.com/111122223333/q"}`, nil},
		{"services", `{"services":[{"cluster":"prod","service":"web"}]}`, nil},
		{"feed regions", `{"feedAddr":":8081","feedRegions":["eu-west-1","us-east-1"]}`, nil},
		{"bad feed region", `{"feedAddr":":8081","feedRegions":["eu-west-1","Europe"]}`, []string{`ESA202: AGENT_CONFIG is not a valid agent configuration: feedRegions: "Europe" is not an AWS region ("eu-west-1")`}},
		{"misspelt", `{"feedAdr":":8081"}`, []string{`ESA202: AGENT_CONFIG is not a valid agent configuration: AGENT_CONFIG: feedAdr: unknown field`}},
		{"bad interval", `{"feedAddr":":8081","interval":"1 minute"}`, []string{`ESA202: AGENT_CONFIG is not a valid agent configuration: interval: "1 minute" is not a duration ("30s", "5m")`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := `{"family":"w","networkMode":"awsvpc","requiresCompatibilities":["FARGATE"],"cpu":"256","memory":"512",
				"containerDefinitions":[{"name":"watch","image":"111122223333.dkr.ecr.us-east-1.amazonaws.com/ecs-secrets-agent:1.0.0",
				"essential":true,"command":["watch"],"readonlyRootFilesystem":true,
				"healthCheck":{"command":["CMD","/agent","health"]},
				"environment":[{"name":"AGENT_CONFIG","value":` + quote(tc.config) + `}]}]}`
			td, err := taskdef.Parse([]byte(js))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range Check("w.json", td) {
				if f.RuleID == "ESA202" {
					got = append(got, f.RuleID+": "+f.Message)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("findings\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
