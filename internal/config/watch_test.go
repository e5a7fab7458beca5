package config

import (
	"slices"
	"testing"
	"time"
)

func TestLoadWatch(t *testing.T) {
	w, err := LoadWatch("", env(map[string]string{"AGENT_CONFIG": `{"services":[{"cluster":"prod","service":"web","region":"eu-west-1"}],"interval":"30s","dryRun":true,"metricsAddr":":9200"}`}))
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Services) != 1 || w.Services[0].String() != "prod/web" || w.Services[0].Region != "eu-west-1" ||
		w.IntervalOr(time.Hour) != 30*time.Second || !w.DryRun || w.MetricsAddr != ":9200" {
		t.Errorf("watch = %+v", w)
	}
	if w, err := LoadWatch("", env(nil)); err != nil || len(w.Services) != 0 || w.IntervalOr(time.Hour) != time.Hour {
		t.Errorf("empty = %+v, %v", w, err)
	}
	for _, tt := range []struct{ json, want string }{
		{`{"services":[{"cluster":"prod"}]}`, `services[0]: cluster and service are required`},
		{`{"services":[],"intervall":"1m"}`, `AGENT_CONFIG: intervall: unknown field`},
		{`{"interval":"soon"}`, `interval: "soon" is not a duration ("30s", "5m")`},
		{`{"interval":"100ms"}`, `interval: 100ms is below the minimum of 1s`},
		{`{"secrets":[]}`, `AGENT_CONFIG: secrets: unknown field`},
	} {
		_, err := LoadWatch("", env(map[string]string{"AGENT_CONFIG": tt.json}))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: error %v, want %q", tt.json, err, tt.want)
		}
	}
	if _, err := LoadWatch("x.json", env(map[string]string{"AGENT_CONFIG": "{}"})); err == nil {
		t.Error("both --config and AGENT_CONFIG accepted")
	}
}

// feedRegions in the watcher's JSON and --feed-regions read the same and
// fail the same, each error naming its source.
func TestFeedRegions(t *testing.T) {
	for _, tt := range []struct {
		name, flag, json string
		want             []string
		flagErr, jsonErr string // after "--feed-regions" and "feedRegions"
	}{
		{name: "one", flag: "eu-west-1", json: `["eu-west-1"]`, want: []string{"eu-west-1"}},
		{name: "several", flag: "eu-west-1,us-east-1", json: `["eu-west-1","us-east-1"]`, want: []string{"eu-west-1", "us-east-1"}},
		{name: "spaces", flag: " eu-west-1 , us-east-1", json: `["eu-west-1","us-east-1"]`, want: []string{"eu-west-1", "us-east-1"}},
		{name: "gov", flag: "us-gov-west-1,us-gov-east-1", json: `["us-gov-west-1","us-gov-east-1"]`, want: []string{"us-gov-west-1", "us-gov-east-1"}},
		{name: "not a region", flag: "eu-west-1,europe", json: `["eu-west-1","europe"]`,
			flagErr: `: "europe" is not an AWS region ("eu-west-1")`, jsonErr: `: "europe" is not an AWS region ("eu-west-1")`},
		{name: "empty element", flag: "eu-west-1,,us-east-1", json: `["eu-west-1","","us-east-1"]`,
			flagErr: `: an empty region; want regions separated by commas ("eu-west-1,us-east-1")`,
			jsonErr: `: an empty region; want regions separated by commas ("eu-west-1,us-east-1")`},
		{name: "twice", flag: "eu-west-1,us-east-1,eu-west-1", json: `["eu-west-1","us-east-1","eu-west-1"]`,
			flagErr: `: eu-west-1 is named twice`, jsonErr: `: eu-west-1 is named twice`},
		{name: "two partitions", flag: "eu-west-1,cn-north-1", json: `["eu-west-1","cn-north-1"]`,
			flagErr: `: eu-west-1 is in partition aws and cn-north-1 in aws-cn: one watcher's role reads one partition, run a watcher in each`,
			jsonErr: `: eu-west-1 is in partition aws and cn-north-1 in aws-cn: one watcher's role reads one partition, run a watcher in each`},
		{name: "none", flag: "", json: `[]`,
			flagErr: `: an empty region; want regions separated by commas ("eu-west-1,us-east-1")`,
			jsonErr: `: empty; leave it out to serve the watcher's own region`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFeedRegions(tt.flag)
			if tt.flagErr != "" {
				if err == nil || err.Error() != "--feed-regions"+tt.flagErr {
					t.Errorf("--feed-regions %q: %v, want %q", tt.flag, err, "--feed-regions"+tt.flagErr)
				}
			} else if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("--feed-regions %q: %q, %v, want %q", tt.flag, got, err, tt.want)
			}

			w, err := LoadWatch("", env(map[string]string{"AGENT_CONFIG": `{"feedAddr":":8081","feedRegions":` + tt.json + `}`}))
			if tt.jsonErr != "" {
				if err == nil || err.Error() != "feedRegions"+tt.jsonErr {
					t.Errorf("feedRegions %s: %v, want %q", tt.json, err, "feedRegions"+tt.jsonErr)
				}
			} else if err != nil || !slices.Equal(w.FeedRegions, tt.want) {
				t.Errorf("feedRegions %s: %+v, %v, want %q", tt.json, w, err, tt.want)
			}
		})
	}
	// Left out, or null: the watcher's own region, which watch works out.
	for _, js := range []string{`{"feedAddr":":8081"}`, `{"feedAddr":":8081","feedRegions":null}`} {
		if w, err := LoadWatch("", env(map[string]string{"AGENT_CONFIG": js})); err != nil || w.FeedRegions != nil {
			t.Errorf("%s: %+v, %v", js, w, err)
		}
	}
}
