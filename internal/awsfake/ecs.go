package awsfake

// ECS, for the rotation watcher (agent watch) and the in-task redeploy
// action: the three operations they call (DescribeServices,
// DescribeTaskDefinition, UpdateService) plus seeding. kumo v0.33.1, the
// other emulator the tests use, has no DescribeServices and no
// DescribeTaskDefinition, keeps no secrets[] in its container definitions
// and ignores forceNewDeployment, so this fake covers ECS.
//
// Deployments follow ECS's rolling-update controller closely enough for
// "is there a deployment newer than the change": a new deployment is
// PRIMARY (rolloutState IN_PROGRESS, createdAt now), the previous PRIMARY
// becomes ACTIVE, and older ACTIVE ones are dropped (ECS drops them once
// their tasks are gone; nothing here runs tasks).

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// maxDescribeServices is DescribeServices' limit on services a call.
const maxDescribeServices = 10

// ecsTaskDef is one registered revision.
type ecsTaskDef struct {
	out taskDefinitionOut
}

type ecsService struct {
	arn, name, clusterARN string
	taskDef               string // ARN
	created               time.Time
	deployments           []*ecsDeployment // newest first
}

type ecsDeployment struct {
	id, status, taskDef string
	created, updated    time.Time
}

// Deployment is one deployment of a service, as DescribeServices shows it.
type Deployment struct {
	ID             string
	Status         string // PRIMARY or ACTIVE
	TaskDefinition string // ARN
	CreatedAt      time.Time
}

// Wire shapes (awsJson1_1, camelCase as the ECS model names them).
type (
	taskDefinitionOut struct {
		TaskDefinitionArn    string         `json:"taskDefinitionArn"`
		Family               string         `json:"family"`
		Revision             int32          `json:"revision"`
		Status               string         `json:"status"`
		ContainerDefinitions []containerOut `json:"containerDefinitions"`
		RegisteredAt         float64        `json:"registeredAt"`
	}
	containerOut struct {
		Name             string           `json:"name"`
		Image            string           `json:"image,omitempty"`
		Essential        *bool            `json:"essential,omitempty"`
		Environment      []keyValueOut    `json:"environment,omitempty"`
		Secrets          []ecsSecretOut   `json:"secrets,omitempty"`
		LogConfiguration *logConfigOut    `json:"logConfiguration,omitempty"`
		DependsOn        []dependsOnOut   `json:"dependsOn,omitempty"`
		MountPoints      []mountPointOut  `json:"mountPoints,omitempty"`
		Command          []string         `json:"command,omitempty"`
		PortMappings     []portMappingOut `json:"portMappings,omitempty"`
	}
	keyValueOut struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	ecsSecretOut struct {
		Name      string `json:"name"`
		ValueFrom string `json:"valueFrom"`
	}
	logConfigOut struct {
		LogDriver     string            `json:"logDriver"`
		Options       map[string]string `json:"options,omitempty"`
		SecretOptions []ecsSecretOut    `json:"secretOptions,omitempty"`
	}
	dependsOnOut struct {
		ContainerName string `json:"containerName"`
		Condition     string `json:"condition"`
	}
	mountPointOut struct {
		SourceVolume  string `json:"sourceVolume"`
		ContainerPath string `json:"containerPath"`
		ReadOnly      bool   `json:"readOnly"`
	}
	portMappingOut struct {
		ContainerPort int32  `json:"containerPort"`
		Protocol      string `json:"protocol,omitempty"`
	}
	deploymentOut struct {
		ID             string  `json:"id"`
		Status         string  `json:"status"`
		TaskDefinition string  `json:"taskDefinition"`
		DesiredCount   int32   `json:"desiredCount"`
		PendingCount   int32   `json:"pendingCount"`
		RunningCount   int32   `json:"runningCount"`
		CreatedAt      float64 `json:"createdAt"`
		UpdatedAt      float64 `json:"updatedAt"`
		LaunchType     string  `json:"launchType"`
		RolloutState   string  `json:"rolloutState"`
	}
	serviceOut struct {
		ServiceArn     string          `json:"serviceArn"`
		ServiceName    string          `json:"serviceName"`
		ClusterArn     string          `json:"clusterArn"`
		Status         string          `json:"status"`
		DesiredCount   int32           `json:"desiredCount"`
		RunningCount   int32           `json:"runningCount"`
		PendingCount   int32           `json:"pendingCount"`
		LaunchType     string          `json:"launchType"`
		TaskDefinition string          `json:"taskDefinition"`
		Deployments    []deploymentOut `json:"deployments"`
		CreatedAt      float64         `json:"createdAt"`
	}
	failureOut struct {
		Arn    string `json:"arn"`
		Reason string `json:"reason"`
	}
)

func ecsARN(region, resource string) string {
	return "arn:aws:ecs:" + region + ":" + Account + ":" + resource
}

// RegisterTaskDefinition registers a new revision of in.Family in region
// and returns its ARN (…:task-definition/FAMILY:REVISION). Only the
// container definitions' name, image, essential, command, environment,
// secrets, logConfiguration, dependsOn, mountPoints and portMappings are
// kept. It panics without a family or a named container.
func (f *Fake) RegisterTaskDefinition(region string, in *ecs.RegisterTaskDefinitionInput) (arn string) {
	family := aws.ToString(in.Family)
	if family == "" || len(in.ContainerDefinitions) == 0 {
		panic("awsfake: RegisterTaskDefinition needs a family and container definitions")
	}
	var containers []containerOut
	for _, c := range in.ContainerDefinitions {
		if aws.ToString(c.Name) == "" {
			panic("awsfake: RegisterTaskDefinition: a container definition has no name")
		}
		o := containerOut{Name: aws.ToString(c.Name), Image: aws.ToString(c.Image), Essential: c.Essential, Command: slices.Clone(c.Command)}
		for _, e := range c.Environment {
			o.Environment = append(o.Environment, keyValueOut{aws.ToString(e.Name), aws.ToString(e.Value)})
		}
		for _, s := range c.Secrets {
			o.Secrets = append(o.Secrets, ecsSecretOut{aws.ToString(s.Name), aws.ToString(s.ValueFrom)})
		}
		if lc := c.LogConfiguration; lc != nil {
			o.LogConfiguration = &logConfigOut{LogDriver: string(lc.LogDriver), Options: lc.Options}
			for _, s := range lc.SecretOptions {
				o.LogConfiguration.SecretOptions = append(o.LogConfiguration.SecretOptions, ecsSecretOut{aws.ToString(s.Name), aws.ToString(s.ValueFrom)})
			}
		}
		for _, d := range c.DependsOn {
			o.DependsOn = append(o.DependsOn, dependsOnOut{aws.ToString(d.ContainerName), string(d.Condition)})
		}
		for _, m := range c.MountPoints {
			o.MountPoints = append(o.MountPoints, mountPointOut{aws.ToString(m.SourceVolume), aws.ToString(m.ContainerPath), aws.ToBool(m.ReadOnly)})
		}
		for _, p := range c.PortMappings {
			o.PortMappings = append(o.PortMappings, portMappingOut{aws.ToInt32(p.ContainerPort), string(p.Protocol)})
		}
		containers = append(containers, o)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.store(region)
	rev := int32(len(rs.taskDefs[family]) + 1)
	td := &ecsTaskDef{out: taskDefinitionOut{
		TaskDefinitionArn:    ecsARN(region, "task-definition/"+family+":"+strconv.Itoa(int(rev))),
		Family:               family,
		Revision:             rev,
		Status:               "ACTIVE",
		ContainerDefinitions: containers,
		RegisteredAt:         epoch(time.Now()),
	}}
	rs.taskDefs[family] = append(rs.taskDefs[family], td)
	return td.out.TaskDefinitionArn
}

// findTaskDef resolves "family" (latest revision), "family:rev" or an ARN.
// Callers hold mu.
func (rs *regionStore) findTaskDef(region, ref string) *ecsTaskDef {
	ref = strings.TrimPrefix(ref, ecsARN(region, "task-definition/"))
	if strings.HasPrefix(ref, "arn:") {
		return nil
	}
	family, rev, hasRev := strings.Cut(ref, ":")
	revs := rs.taskDefs[family]
	if len(revs) == 0 {
		return nil
	}
	if !hasRev {
		return revs[len(revs)-1]
	}
	n, err := strconv.Atoi(rev)
	if err != nil || n < 1 || n > len(revs) {
		return nil
	}
	return revs[n-1]
}

// clusterName accepts a cluster name or ARN; "" is "default".
func clusterName(region, c string) string {
	if c == "" {
		return "default"
	}
	return strings.TrimPrefix(c, ecsARN(region, "cluster/"))
}

// serviceName accepts a service name or ARN (new or old format).
func serviceName(region, cluster, s string) string {
	if rest, ok := strings.CutPrefix(s, ecsARN(region, "service/")); ok {
		return strings.TrimPrefix(rest, cluster+"/")
	}
	return s
}

// CreateService creates a service (and its cluster, if new) running
// taskDefinition (family, family:rev or ARN), with one PRIMARY deployment
// created now, and returns the service ARN. It panics if the task
// definition is not registered or the service exists.
func (f *Fake) CreateService(region, cluster, service, taskDefinition string) (arn string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.store(region)
	td := rs.findTaskDef(region, taskDefinition)
	if td == nil {
		panic(fmt.Sprintf("awsfake: CreateService: no task definition %q in %s", taskDefinition, region))
	}
	cluster = clusterName(region, cluster)
	if rs.clusters[cluster] == nil {
		rs.clusters[cluster] = map[string]*ecsService{}
	}
	if rs.clusters[cluster][service] != nil {
		panic(fmt.Sprintf("awsfake: CreateService: service %q exists in cluster %q", service, cluster))
	}
	now := time.Now()
	s := &ecsService{
		arn:        ecsARN(region, "service/"+cluster+"/"+service),
		name:       service,
		clusterARN: ecsARN(region, "cluster/"+cluster),
		created:    now,
	}
	s.deploy(td.out.TaskDefinitionArn, now)
	rs.clusters[cluster][service] = s
	return s.arn
}

// SetServiceTaskDefinition deploys taskDefinition (family, family:rev or
// ARN; the current one again is a forced new deployment) to the service as
// a deploy pipeline would: a new PRIMARY deployment created now. It panics
// if the service or task definition does not exist.
func (f *Fake) SetServiceTaskDefinition(region, cluster, service, taskDefinition string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.store(region)
	td := rs.findTaskDef(region, taskDefinition)
	s := rs.clusters[clusterName(region, cluster)][service]
	if td == nil || s == nil {
		panic(fmt.Sprintf("awsfake: SetServiceTaskDefinition: no service %q in cluster %q or no task definition %q in %s", service, cluster, taskDefinition, region))
	}
	s.deploy(td.out.TaskDefinitionArn, time.Now())
}

// Deployments returns the service's deployments, newest first (nil if there
// is no such service).
func (f *Fake) Deployments(region, cluster, service string) []Deployment {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.store(region).clusters[clusterName(region, cluster)][service]
	if s == nil {
		return nil
	}
	out := make([]Deployment, len(s.deployments))
	for i, d := range s.deployments {
		out[i] = Deployment{ID: d.id, Status: d.status, TaskDefinition: d.taskDef, CreatedAt: d.created}
	}
	return out
}

// SetECSLatency adds d to every call of op ("UpdateService", …), on top of
// SetLatency; 0 removes it. It works for any operation, but exists so that
// a test can make ECS's control plane slow (an UpdateService of over a
// second) while the polling stays fast.
func (f *Fake) SetECSLatency(op string, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d <= 0 {
		delete(f.opLatency, op)
		return
	}
	f.opLatency[op] = d
}

// deploy starts a new PRIMARY deployment of taskDef. Callers hold mu.
func (s *ecsService) deploy(taskDef string, now time.Time) {
	var keep []*ecsDeployment
	if len(s.deployments) > 0 {
		prev := s.deployments[0]
		prev.status, prev.updated = "ACTIVE", now
		keep = []*ecsDeployment{prev}
	}
	d := &ecsDeployment{id: "ecs-svc/" + randDigits(19), status: "PRIMARY", taskDef: taskDef, created: now, updated: now}
	s.deployments = append([]*ecsDeployment{d}, keep...)
	s.taskDef = taskDef
}

func (s *ecsService) out() serviceOut {
	o := serviceOut{
		ServiceArn: s.arn, ServiceName: s.name, ClusterArn: s.clusterARN, Status: "ACTIVE",
		DesiredCount: 1, RunningCount: 1, LaunchType: "FARGATE",
		TaskDefinition: s.taskDef, CreatedAt: epoch(s.created), Deployments: []deploymentOut{},
	}
	for _, d := range s.deployments {
		rollout := "COMPLETED"
		if d.status == "PRIMARY" && len(s.deployments) > 1 {
			rollout = "IN_PROGRESS"
		}
		o.Deployments = append(o.Deployments, deploymentOut{
			ID: d.id, Status: d.status, TaskDefinition: d.taskDef, DesiredCount: 1, RunningCount: 1,
			CreatedAt: epoch(d.created), UpdatedAt: epoch(d.updated), LaunchType: "FARGATE", RolloutState: rollout,
		})
	}
	return o
}

func randDigits(n int) string {
	var b strings.Builder
	for range n {
		d, _ := rand.Int(rand.Reader, big.NewInt(10))
		b.WriteString(d.String())
	}
	return b.String()
}

func clusterNotFound() *APIError {
	return &APIError{Status: 400, Code: "ClusterNotFoundException", Message: "Cluster not found."}
}

func ecsInvalid(msg string) *APIError {
	return &APIError{Status: 400, Code: "InvalidParameterException", Message: msg}
}

func (f *Fake) describeServices(region string, body []byte) (any, *APIError) {
	var in struct {
		Cluster  string   `json:"cluster"`
		Services []string `json:"services"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	switch {
	case len(in.Services) == 0:
		return nil, ecsInvalid("Services cannot be empty.")
	case len(in.Services) > maxDescribeServices:
		return nil, ecsInvalid("service names can have at most 10 items.")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cluster := clusterName(region, in.Cluster)
	for _, s := range in.Services {
		name := serviceName(region, cluster, s)
		if f.denied("DescribeServices", s, name, ecsARN(region, "service/"+cluster+"/"+name)) {
			return nil, accessDenied("ecs:DescribeServices", ecsARN(region, "service/"+cluster+"/"+name))
		}
	}
	services, ok := f.store(region).clusters[cluster]
	if !ok {
		return nil, clusterNotFound()
	}
	out := struct {
		Services []serviceOut `json:"services"`
		Failures []failureOut `json:"failures"`
	}{Services: []serviceOut{}, Failures: []failureOut{}}
	for _, s := range in.Services {
		name := serviceName(region, cluster, s)
		if svc := services[name]; svc != nil {
			out.Services = append(out.Services, svc.out())
			continue
		}
		out.Failures = append(out.Failures, failureOut{Arn: ecsARN(region, "service/"+cluster+"/"+name), Reason: "MISSING"})
	}
	return out, nil
}

func (f *Fake) describeTaskDefinition(region string, body []byte) (any, *APIError) {
	var in struct {
		TaskDefinition string `json:"taskDefinition"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if in.TaskDefinition == "" {
		return nil, ecsInvalid("taskDefinition cannot be empty.")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	td := f.store(region).findTaskDef(region, in.TaskDefinition)
	var arn string
	if td != nil {
		arn = td.out.TaskDefinitionArn
	}
	if f.denied("DescribeTaskDefinition", in.TaskDefinition, arn) {
		return nil, accessDenied("ecs:DescribeTaskDefinition", in.TaskDefinition)
	}
	if td == nil {
		return nil, &APIError{Status: 400, Code: "ClientException", Message: "Unable to describe task definition."}
	}
	return struct {
		TaskDefinition taskDefinitionOut `json:"taskDefinition"`
	}{td.out}, nil
}

func (f *Fake) updateService(region string, body []byte) (any, *APIError) {
	var in struct {
		Cluster            string `json:"cluster"`
		Service            string `json:"service"`
		TaskDefinition     string `json:"taskDefinition"`
		ForceNewDeployment bool   `json:"forceNewDeployment"`
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if in.Service == "" {
		return nil, ecsInvalid("service cannot be empty.")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.store(region)
	cluster := clusterName(region, in.Cluster)
	name := serviceName(region, cluster, in.Service)
	svcARN := ecsARN(region, "service/"+cluster+"/"+name)
	if f.denied("UpdateService", in.Service, name, svcARN) {
		return nil, accessDenied("ecs:UpdateService", svcARN)
	}
	services, ok := rs.clusters[cluster]
	if !ok {
		return nil, clusterNotFound()
	}
	s := services[name]
	if s == nil {
		return nil, &APIError{Status: 400, Code: "ServiceNotFoundException", Message: "Service not found."}
	}
	taskDef := s.taskDef
	if in.TaskDefinition != "" {
		td := rs.findTaskDef(region, in.TaskDefinition)
		if td == nil {
			return nil, &APIError{Status: 400, Code: "ClientException", Message: "TaskDefinition not found."}
		}
		taskDef = td.out.TaskDefinitionArn
	}
	// Without a change and without forceNewDeployment ECS starts nothing.
	if in.ForceNewDeployment || taskDef != s.taskDef {
		s.deploy(taskDef, time.Now())
	}
	return struct {
		Service serviceOut `json:"service"`
	}{s.out()}, nil
}
