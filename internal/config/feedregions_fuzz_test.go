package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/fetch"
)

// FuzzParseFeedRegions: --feed-regions either fails or gives at least one
// valid region, none twice, all in the first one's partition.
func FuzzParseFeedRegions(f *testing.F) {
	for _, s := range []string{"eu-west-1", "eu-west-1, us-east-1", "", ",", "eu-west-1,eu-west-1", "us-gov-west-1,us-east-1", "cn-north-1", "mars-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		regions, err := ParseFeedRegions(s)
		if err != nil {
			return
		}
		if len(regions) == 0 {
			t.Fatalf("%q: no region and no error", s)
		}
		for i, r := range regions {
			if !fetch.ValidRegion(r) || strings.TrimSpace(r) != r || slices.Contains(regions[:i], r) ||
				fetch.RegionPartition(r) != fetch.RegionPartition(regions[0]) {
				t.Fatalf("%q gave %q", s, regions)
			}
		}
	})
}
