package watch

import (
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// NewECSClients returns one ECS client per region, made on first use; all
// share cfg's credential cache, HTTP transport and API observer.
func NewECSClients(cfg aws.Config) func(region string) ECSClient {
	var mu sync.Mutex
	clients := map[string]ECSClient{}
	return func(region string) ECSClient {
		mu.Lock()
		defer mu.Unlock()
		if clients[region] == nil {
			clients[region] = ecs.NewFromConfig(cfg, func(o *ecs.Options) { o.Region = region })
		}
		return clients[region]
	}
}
