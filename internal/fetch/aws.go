package fetch

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// MaxAttempts is higher than the SDK's default of 3 so that a task started
// with a thousand others rides out a burst of throttling.
const MaxAttempts = 8

// LoadAWSConfig builds the one aws.Config of the process from the SDK's
// default chain: in a task, the ECS container credentials endpoint
// (AWS_CONTAINER_CREDENTIALS_*), and AWS_ENDPOINT_URL where set.
func LoadAWSConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = MaxAttempts
				o.MaxBackoff = 10 * time.Second
			})
		}),
	)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Credentials != nil {
		cfg.Credentials = markedCredentials{cfg.Credentials}
	}
	return cfg, nil
}

type markedCredentials struct{ aws.CredentialsProvider }

func (m markedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	return c, nil
}

// IsCredentialsProvider lets the SDK see the cache inside, so that clients
// do not wrap it in a cache of their own.
func (m markedCredentials) IsCredentialsProvider(target aws.CredentialsProvider) bool {
	return aws.IsCredentialsProvider(m.CredentialsProvider, target)
}

// NewClients returns one client per service and region, made on first use;
// all share cfg's credential cache and HTTP transport.
func NewClients(cfg aws.Config) Clients {
	var mu sync.Mutex
	ssmc := map[string]SSMClient{}
	smc := map[string]SecretsManagerClient{}
	return Clients{
		SSM: func(region string) SSMClient {
			mu.Lock()
			defer mu.Unlock()
			if ssmc[region] == nil {
				ssmc[region] = ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.Region = region })
			}
			return ssmc[region]
		},
		SecretsManager: func(region string) SecretsManagerClient {
			mu.Lock()
			defer mu.Unlock()
			if smc[region] == nil {
				smc[region] = secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.Region = region })
			}
			return smc[region]
		},
	}
}
