package watch

import (
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/ecs-secrets-agent/ecs-secrets-agent/internal/redeploy"
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

// NewSSMClients returns one SSM client per region, for the redeploy lock
// records, made on first use.
func NewSSMClients(cfg aws.Config) func(region string) redeploy.SSMClient {
	var mu sync.Mutex
	clients := map[string]redeploy.SSMClient{}
	return func(region string) redeploy.SSMClient {
		mu.Lock()
		defer mu.Unlock()
		if clients[region] == nil {
			clients[region] = ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.Region = region })
		}
		return clients[region]
	}
}
