// Package awsfake is a wire-level stand-in for the AWS APIs the agent calls:
// SSM, Secrets Manager and ECS over awsJson1_1, SQS over awsJson1_0, plus the ECS container
// credentials endpoint. Real SDK clients talk to it over HTTP, so tests and benchmarks
// exercise the SDK's credential chain, SigV4 signing, retries and
// (de)serialization exactly as in an ECS task.
//
// It does not depend on package testing, so a benchmark program can use it.
//
// Why this fake and not kumo for the redeploy tests: kumo has no
// DescribeServices, DescribeTaskDefinition or forceNewDeployment, and no
// per-operation latency, which the exactly-once tests need (UpdateService
// slowed to over a second, deployments with createdAt); GetParametersByPath
// (the lock records) is here for the same tests.
package awsfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Account is the AWS account id that owns every resource in the fake.
const Account = "111122223333"

// Fake serves the AWS APIs and the container credentials endpoint on
// 127.0.0.1. It is safe for concurrent use.
type Fake struct {
	URL            string // AWS endpoint base URL (http://127.0.0.1:PORT)
	CredentialsURL string // ECS container credentials endpoint (full URI)
	Token          string // value for AWS_CONTAINER_AUTHORIZATION_TOKEN
	AccessKeyID    string // the key the credentials endpoint hands out

	// SecretAccessKey and SessionToken complete the handed-out credentials;
	// tests use them to sign requests deliberately wrong.
	SecretAccessKey string
	SessionToken    string

	api, creds *httptest.Server
	credPath   string

	mu        sync.Mutex
	regions   map[string]*regionStore
	deny      map[string]bool // op + "\x00" + resource
	latency   time.Duration
	opLatency map[string]time.Duration // SetECSLatency
	fault     func(op string) *APIError

	sqs    sqsState
	closed chan struct{} // closed by Close: ends held SQS receives

	calls        map[string]int
	log          []Call
	credRequests int
	sigFailures  int
}

// Call records one AWS API request as received.
type Call struct {
	Op             string
	Region         string
	Names          []string // GetParameters names, or the Name / SecretId; ECS: the services, service or task definition
	WithDecryption bool
	Cluster        string // ECS: the cluster as sent
	Force          bool   // UpdateService: forceNewDeployment
	Time           time.Time
}

// APIError is an AWS error response: HTTP status plus the "__type" code.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

type regionStore struct {
	params   map[string]*parameter
	secrets  map[string]*secret                // by name
	taskDefs map[string][]*ecsTaskDef          // by family; revision n at n-1
	clusters map[string]map[string]*ecsService // cluster name → service name →
}

// New starts the AWS endpoint and the credentials endpoint. Call Close when
// done.
func New() *Fake {
	f := &Fake{
		AccessKeyID:     "ASIA" + randString(upperDigits, 16),
		SecretAccessKey: randString(alnum, 40),
		SessionToken:    "IQoJb3JpZ2luX2VjE" + randString(alnum, 120),
		Token:           randString(alnum, 32),
		credPath:        "/v2/credentials/" + newUUID(),
		regions:         map[string]*regionStore{},
		deny:            map[string]bool{},
		opLatency:       map[string]time.Duration{},
		calls:           map[string]int{},
		closed:          make(chan struct{}),
	}
	f.api = httptest.NewServer(http.HandlerFunc(f.serveAPI))
	f.creds = httptest.NewServer(http.HandlerFunc(f.serveCredentials))
	f.URL = f.api.URL
	f.CredentialsURL = f.creds.URL + f.credPath
	return f
}

// Close shuts both servers down, waiting for requests in flight.
func (f *Fake) Close() {
	select {
	case <-f.closed:
	default:
		close(f.closed)
	}
	f.api.Close()
	f.creds.Close()
}

// SetenvIsolated sets, with setenv (t.Setenv in a test), the environment
// of Env for the current process, and blanks what would put the
// developer's own AWS setup ahead of it in the SDK's default chain: static
// keys, profiles, service-specific endpoints, and the shared config files
// (pointed into dir, where none exist).
func (f *Fake) SetenvIsolated(setenv func(key, value string), region, dir string) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_ECS"} {
		setenv(k, "")
	}
	setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	for _, kv := range f.Env(region) {
		k, v, _ := strings.Cut(kv, "=")
		setenv(k, v)
	}
}

// Env returns the environment a process needs to use the fake as in an ECS
// task: container credentials, endpoint and region, and no static keys.
func (f *Fake) Env(region string) []string {
	return []string{
		"AWS_CONTAINER_CREDENTIALS_FULL_URI=" + f.CredentialsURL,
		"AWS_CONTAINER_AUTHORIZATION_TOKEN=" + f.Token,
		"AWS_ENDPOINT_URL=" + f.URL,
		"AWS_REGION=" + region,
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// DenyAccess makes requests for op on resource fail with
// AccessDeniedException. resource is a parameter name or ARN, a secret
// name or ARN, an ECS service name or ARN (DescribeServices,
// UpdateService), or a task definition as asked for or its ARN
// (DescribeTaskDefinition).
func (f *Fake) DenyAccess(op, resource string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deny[op+"\x00"+resource] = true
}

// AllowAccess undoes DenyAccess(op, resource).
func (f *Fake) AllowAccess(op, resource string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.deny, op+"\x00"+resource)
}

// denied reports whether op is denied on any of the resources. Callers hold mu.
func (f *Fake) denied(op string, resources ...string) bool {
	for _, r := range resources {
		if r != "" && f.deny[op+"\x00"+r] {
			return true
		}
	}
	return false
}

// SetLatency adds d to every AWS API call (not the credentials endpoint).
func (f *Fake) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
}

// SetFault installs fn, called for every AWS API call after the signature
// check; a non-nil result is returned instead of the real response. nil
// removes it.
func (f *Fake) SetFault(fn func(op string) *APIError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fn
}

// Calls counts the received AWS calls of op, including faulted and rejected
// ones.
func (f *Fake) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// CallLog returns a copy of every AWS call received, in arrival order.
func (f *Fake) CallLog() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Call, len(f.log))
	for i, c := range f.log {
		c.Names = slices.Clone(c.Names)
		out[i] = c
	}
	return out
}

// CredentialRequests counts requests to the credentials endpoint.
func (f *Fake) CredentialRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.credRequests
}

// SignatureFailures counts AWS requests rejected by the SigV4 check.
func (f *Fake) SignatureFailures() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sigFailures
}

// ResetCounts zeroes all counters and the call log.
func (f *Fake) ResetCounts() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = map[string]int{}
	f.log = nil
	f.credRequests = 0
	f.sigFailures = 0
}

// store returns the resources of region, creating them. Callers hold mu.
func (f *Fake) store(region string) *regionStore {
	rs := f.regions[region]
	if rs == nil {
		rs = &regionStore{params: map[string]*parameter{}, secrets: map[string]*secret{},
			taskDefs: map[string][]*ecsTaskDef{}, clusters: map[string]map[string]*ecsService{}}
		f.regions[region] = rs
	}
	return rs
}

// handler is one API operation: it decodes body and returns the output
// shape to encode as JSON, or an error response.
type handler func(region string, body []byte) (any, *APIError)

// route maps an X-Amz-Target to the SigV4 service name it must be signed
// for and its handler (nil when the operation is not implemented).
func (f *Fake) route(target string) (service string, h handler) {
	prefix, op, _ := strings.Cut(target, ".")
	switch prefix {
	case "AmazonSSM":
		service = "ssm"
		switch op {
		case "GetParameters":
			h = f.getParameters
		case "GetParameter":
			h = f.getParameter
		case "GetParametersByPath":
			h = f.getParametersByPath
		case "PutParameter":
			h = f.putParameterAPI
		case "DeleteParameter":
			h = f.deleteParameter
		}
	case "secretsmanager":
		service = "secretsmanager"
		switch op {
		case "GetSecretValue":
			h = f.getSecretValue
		case "DescribeSecret":
			h = f.describeSecret
		}
	case "AmazonSQS":
		service = "sqs"
		switch op {
		case "ReceiveMessage":
			h = f.receiveMessage
		case "DeleteMessageBatch":
			h = f.deleteMessageBatch
		}
	case "AmazonEC2ContainerServiceV20141113":
		service = "ecs"
		switch op {
		case "DescribeServices":
			h = f.describeServices
		case "DescribeTaskDefinition":
			h = f.describeTaskDefinition
		case "UpdateService":
			h = f.updateService
		}
	}
	return service, h
}

func (f *Fake) serveAPI(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, &APIError{Status: 400, Code: "SerializationException", Message: "read body: " + err.Error()})
		return
	}
	target := r.Header.Get("X-Amz-Target")
	_, op, _ := strings.Cut(target, ".")
	if op == "" {
		op = target
	}
	auth, authErr := parseAuthorization(r.Header.Get("Authorization"))

	c := Call{Op: op, Region: auth.region, Time: time.Now()}
	var names struct {
		Names          []string
		Name           *string
		SecretId       *string
		WithDecryption bool
		// ECS (camelCase on the wire; encoding/json matches either case)
		Cluster            string
		Services           []string
		Service            *string
		TaskDefinition     *string
		ForceNewDeployment bool
	}
	if json.Unmarshal(body, &names) == nil {
		c.Names = names.Names
		c.WithDecryption = names.WithDecryption
		c.Cluster, c.Force = names.Cluster, names.ForceNewDeployment
		for _, one := range []*string{names.Name, names.SecretId, names.TaskDefinition, names.Service} {
			if one != nil {
				c.Names = []string{*one}
			}
		}
		if names.Services != nil {
			c.Names = names.Services
		}
	}

	f.mu.Lock()
	f.calls[op]++
	f.log = append(f.log, c)
	latency, fault := f.latency+f.opLatency[op], f.fault
	f.mu.Unlock()

	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	service, h := f.route(target)
	if e := f.verify(r, body, auth, authErr, service); e != nil {
		f.mu.Lock()
		f.sigFailures++
		f.mu.Unlock()
		writeError(w, e)
		return
	}
	// Called without mu so fn may use the Fake (e.g. Calls).
	if fault != nil {
		if e := fault(op); e != nil {
			writeError(w, e)
			return
		}
	}
	if r.Method != http.MethodPost || h == nil {
		writeError(w, &APIError{Status: 400, Code: "UnknownOperationException", Message: "unknown operation " + target})
		return
	}
	out, e := h(auth.region, body)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
