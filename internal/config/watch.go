package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// Watch is the configuration of agent watch, from --config FILE or
// AGENT_CONFIG (the same JSON either way), before flags are merged in.
type Watch struct {
	Services    []WatchService `json:"services"`
	Interval    string         `json:"interval"`
	DryRun      bool           `json:"dryRun"`
	MetricsAddr string         `json:"metricsAddr"`
	// FeedAddr is where to serve the change feed (docs/FEED.md); "" serves
	// none.
	FeedAddr string `json:"feedAddr"`
	// FeedRegions are the regions whose references the feed serves; none
	// given means the watcher's own region. A ref in another region is
	// answered with an error, and its agents poll it themselves.
	FeedRegions []string `json:"feedRegions"`
	// EventsQueue is the SQS queue URL of Parameter Store and Secrets
	// Manager change events; "" polls only.
	EventsQueue string `json:"eventsQueue"`
}

// WatchService is one service agent watch watches. Region "" means the
// watcher's own region.
type WatchService struct {
	Cluster string `json:"cluster"`
	Service string `json:"service"`
	Region  string `json:"region"`
}

// LoadWatch reads the watcher's JSON from path or, if path is empty, from
// AGENT_CONFIG; neither set gives an empty configuration. Errors are *Error.
func LoadWatch(path string, getenv func(string) string) (*Watch, error) {
	w := &Watch{}
	envJSON := getenv("AGENT_CONFIG")
	switch {
	case path != "" && envJSON != "":
		return nil, errorf("both --config %q and AGENT_CONFIG are set: use one", path)
	case path != "":
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, errorf("--config: cannot read %q: %v", path, unwrapPathError(err))
		}
		if err := decodeStrict(data, w); err != nil {
			return nil, errorf("--config %s: %v", path, err)
		}
	case envJSON != "":
		if err := decodeStrict([]byte(envJSON), w); err != nil {
			return nil, errorf("AGENT_CONFIG: %v", err)
		}
	}
	for i, s := range w.Services {
		if s.Cluster == "" || s.Service == "" {
			return nil, errorf("services[%d]: cluster and service are required", i)
		}
	}
	if w.FeedRegions != nil {
		if err := CheckFeedRegions("feedRegions", w.FeedRegions); err != nil {
			return nil, err
		}
	}
	if w.Interval != "" {
		d, err := parseDuration("interval", w.Interval)
		if err != nil {
			return nil, err
		}
		if d < MinInterval {
			return nil, errorf("interval: %s is below the minimum of 1s", d)
		}
	}
	return w, nil
}

// ParseFeedRegions reads --feed-regions: regions separated by commas
// (spaces around them are dropped), checked as CheckFeedRegions does.
func ParseFeedRegions(s string) ([]string, error) {
	regions := strings.Split(s, ",")
	for i, r := range regions {
		regions[i] = strings.TrimSpace(r)
	}
	if err := CheckFeedRegions("--feed-regions", regions); err != nil {
		return nil, err
	}
	return regions, nil
}

// CheckFeedRegions validates the regions the feed serves, field naming
// them in errors: at least one, each an AWS region named once, all in one
// partition (one role's credentials read one partition).
func CheckFeedRegions(field string, regions []string) error {
	if len(regions) == 0 {
		return errorf("%s: empty; leave it out to serve the watcher's own region", field)
	}
	seen := make(map[string]bool, len(regions))
	for _, r := range regions {
		switch {
		case r == "":
			return errorf("%s: an empty region; want regions separated by commas (\"eu-west-1,us-east-1\")", field)
		case !fetch.ValidRegion(r):
			return errorf("%s: %q is not an AWS region (\"eu-west-1\")", field, r)
		case seen[r]:
			return errorf("%s: %s is named twice", field, r)
		case fetch.RegionPartition(r) != fetch.RegionPartition(regions[0]):
			return errorf("%s: %s is in partition %s and %s in %s: one watcher's role reads one partition, run a watcher in each",
				field, regions[0], fetch.RegionPartition(regions[0]), r, fetch.RegionPartition(r))
		}
		seen[r] = true
	}
	return nil
}

// IntervalOr is the configured interval, or def.
func (w *Watch) IntervalOr(def time.Duration) time.Duration {
	if w.Interval == "" {
		return def
	}
	d, _ := time.ParseDuration(w.Interval) // validated by LoadWatch
	return d
}

func (s WatchService) String() string { return fmt.Sprintf("%s/%s", s.Cluster, s.Service) }
