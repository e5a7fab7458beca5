package config

import (
	"fmt"
	"os"
	"time"
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

// IntervalOr is the configured interval, or def.
func (w *Watch) IntervalOr(def time.Duration) time.Duration {
	if w.Interval == "" {
		return def
	}
	d, _ := time.ParseDuration(w.Interval) // validated by LoadWatch
	return d
}

func (s WatchService) String() string { return fmt.Sprintf("%s/%s", s.Cluster, s.Service) }
